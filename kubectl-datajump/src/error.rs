//! The kinds of failure the plugin reports, the exit codes they map to, and how they are
//! printed. Bad input (a flag, a file, a value, the kubeconfig or context the user named) exits
//! 2; anything that failed at runtime (the cluster, helm, a failed run) exits 1; a reader that
//! closed stdout early (`| head`) ends the command quietly with 0.
//!
//! With `-o table` the error is `error: <message>` on stderr. With `-o json` or `-o yaml` it is
//! one object on stderr in that format, so scripts read failures the way they read answers:
//! `{"error": <message>, "exitCode": N, "reason": <Reason>, "problems": […], "cluster": {…},
//! "denied": {…}}` (the last three only when they apply). The README documents the shape.

use std::process::ExitCode;

use serde::Serialize;

use crate::kube::edge_error::{Denied, EdgeError, Endpoint};
use crate::output::{Format, StdoutClosed};

/// One problem in an input, where it is: the file (if any), the field path, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A problem with what the user asked for. Anything else reaching `main` is a runtime failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    message: String,
    problems: Vec<Problem>,
}

impl InputError {
    /// Wraps a message as bad input (exit code 2).
    pub fn new(msg: impl Into<String>) -> Self {
        Self {
            message: msg.into(),
            problems: Vec::new(),
        }
    }

    /// Several problems found in one pass: `summary`, then one line per problem (the JSON error
    /// lists them as `problems`).
    pub fn with_problems(summary: impl Into<String>, problems: Vec<Problem>) -> Self {
        let mut message = summary.into();
        for p in &problems {
            message.push_str(&format!("\n  {p}"));
        }
        Self { message, problems }
    }

    /// The problems, when the error lists several.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

/// Exit code for bad input, as clap and ripgrep use it.
pub(crate) const EXIT_INPUT: u8 = 2;
/// Exit code for runtime failures (cluster unreachable, helm failed, a workflow run failed, ...).
pub(crate) const EXIT_RUNTIME: u8 = 1;

/// Maps an error from a command to the process exit code: an edge error's own code, else 2 when
/// any cause is an [`InputError`], else 1.
pub(crate) fn exit_code_for(err: &anyhow::Error) -> u8 {
    if let Some(edge) = err.chain().find_map(|c| c.downcast_ref::<EdgeError>()) {
        return edge.exit_code();
    }
    if err.chain().any(|cause| cause.is::<InputError>()) {
        EXIT_INPUT
    } else {
        EXIT_RUNTIME
    }
}

/// The error as scripts read it (`-o json|yaml`), on stderr.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorReport {
    /// The message, as `error: …` prints it for people.
    pub error: String,
    pub exit_code: u8,
    /// `BadInput`, `Failed`, or the cluster edge's reason (`Unreachable`, `TlsFailure`,
    /// `Unauthorized`, `Forbidden`, `KubeconfigNotFound`, `KubeconfigInvalid`,
    /// `ContextNotFound`).
    pub reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Box<Endpoint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied: Option<Box<Denied>>,
}

impl ErrorReport {
    pub(crate) fn of(err: &anyhow::Error) -> Self {
        let exit_code = exit_code_for(err);
        let edge = err.chain().find_map(|c| c.downcast_ref::<EdgeError>());
        let input = err.chain().find_map(|c| c.downcast_ref::<InputError>());
        let reason = match (edge, exit_code) {
            (Some(e), _) => serde_json::to_value(e.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            (None, EXIT_INPUT) => "BadInput".into(),
            (None, _) => "Failed".into(),
        };
        Self {
            error: format!("{err:#}"),
            exit_code,
            reason,
            problems: input.map(|i| i.problems().to_vec()).unwrap_or_default(),
            cluster: edge.and_then(|e| e.endpoint.clone()),
            denied: edge.and_then(|e| e.denied.clone()),
        }
    }

    /// The report for a command line clap refused (always bad input).
    pub(crate) fn usage(message: String) -> Self {
        Self {
            error: message,
            exit_code: EXIT_INPUT,
            reason: "BadInput".into(),
            problems: Vec::new(),
            cluster: None,
            denied: None,
        }
    }

    /// Prints the report on stderr in `format` (text for a table) and returns its exit code.
    pub(crate) fn print(&self, format: Format) -> ExitCode {
        let text = match format {
            Format::Table => format!("error: {}\n", self.error),
            Format::Json => serde_json::to_string_pretty(self)
                .map(|s| s + "\n")
                .unwrap_or_default(),
            Format::Yaml => serde_yaml::to_string(self).unwrap_or_default(),
        };
        eprint!("{text}");
        ExitCode::from(self.exit_code)
    }
}

/// Prints a command's error as `format` asks and returns the exit code for it; a closed stdout
/// is no error to print.
pub(crate) fn report(err: &anyhow::Error, format: Format) -> ExitCode {
    if err.chain().any(|c| c.is::<StdoutClosed>()) {
        return ExitCode::SUCCESS;
    }
    ErrorReport::of(err).print(format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn input_errors_exit_2_even_when_wrapped() {
        let err = Err::<(), _>(InputError::new("bad --set"))
            .context("reading values")
            .unwrap_err();
        assert_eq!(exit_code_for(&err), 2);
        assert_eq!(exit_code_for(&anyhow::anyhow!("connection refused")), 1);
    }

    #[test]
    fn the_json_error_carries_the_message_exit_code_reason_and_problems() {
        let problems = vec![
            Problem {
                file: Some("etl.yaml".into()),
                path: "spec.schedul".into(),
                message: "unknown field \"schedul\"".into(),
            },
            Problem {
                file: Some("etl.yaml".into()),
                path: "spec.timezone".into(),
                message: "unknown time zone".into(),
            },
        ];
        let err: anyhow::Error = InputError::with_problems("etl.yaml: 2 problems", problems).into();
        let report = serde_json::to_value(ErrorReport::of(&err)).unwrap();
        assert_eq!(
            report,
            serde_json::json!({
                "error": "etl.yaml: 2 problems\n  etl.yaml: spec.schedul: unknown field \"schedul\"\n  etl.yaml: spec.timezone: unknown time zone",
                "exitCode": 2,
                "reason": "BadInput",
                "problems": [
                    {"file": "etl.yaml", "path": "spec.schedul", "message": "unknown field \"schedul\""},
                    {"file": "etl.yaml", "path": "spec.timezone", "message": "unknown time zone"},
                ],
            })
        );
        let failed =
            serde_json::to_value(ErrorReport::of(&anyhow::anyhow!("helm failed"))).unwrap();
        assert_eq!(
            failed,
            serde_json::json!({"error": "helm failed", "exitCode": 1, "reason": "Failed"})
        );
    }
}

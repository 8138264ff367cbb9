//! The two kinds of failure the plugin reports, and the exit codes they map to: bad input
//! (a flag, a file, a value the user can fix) exits 2, anything that failed at runtime exits 1.

use std::process::ExitCode;

/// A problem with what the user asked for. Anything else reaching `main` is a runtime failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl InputError {
    /// Wraps a message as bad input (exit code 2).
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Exit code for bad input, as clap and ripgrep use it.
pub(crate) const EXIT_INPUT: u8 = 2;
/// Exit code for runtime failures (cluster unreachable, helm failed, a workflow run failed, ...).
pub(crate) const EXIT_RUNTIME: u8 = 1;

/// Maps an error from a command to the process exit code: 2 when any cause is an [`InputError`].
pub(crate) fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<InputError>()) {
        EXIT_INPUT
    } else {
        EXIT_RUNTIME
    }
}

/// Prints `error: <chain>` to stderr and returns the exit code for it.
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err:#}");
    ExitCode::from(exit_code_for(err))
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
}

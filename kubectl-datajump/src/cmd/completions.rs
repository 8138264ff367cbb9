//! `completions <shell>`: the completion script for the `kubectl-datajump` binary (clap's static
//! scripts; kubectl's own `kubectl_complete-<plugin>` protocol is Cobra's and is not provided).

use clap::CommandFactory;

use crate::cli::Cli;

/// Writes the completion script to stdout. It is generated in memory first: clap_complete
/// panics when its writer fails, and `completions bash | head` closes stdout early.
pub(crate) fn run(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kubectl-datajump", &mut script);
    crate::output::write_stdout(&script)
}

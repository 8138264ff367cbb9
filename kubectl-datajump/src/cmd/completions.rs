//! `completions <shell>`: the completion script for the binary. kubectl (1.26+) completes plugin
//! arguments through an executable named `kubectl_complete-datajump`; the README shows both setups.

use clap::CommandFactory;

use crate::cli::Cli;

/// Writes the completion script to stdout.
pub fn run(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "kubectl-datajump", &mut std::io::stdout());
    Ok(())
}

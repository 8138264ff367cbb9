//! `kubectl datajump`: the DataJump platform's life cycle from one kubectl plugin. The binary only
//! calls [`run`]; parsing lives in `cli`, each subcommand in `cmd/<noun>.rs` (the workflow verbs
//! in `cmd/workflow/`, reading files through `workflow_file`), cluster access in `kube/`, helm
//! command lines in `helm`, and answers are printed through `output`.

pub mod cli;
pub mod cmd;
pub mod error;
pub mod helm;
pub mod kube;
pub mod manifests;
pub mod output;
pub(crate) mod registry;
pub(crate) mod schema;
pub mod values;
pub mod workflow_file;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command and maps the outcome to an exit code
/// (0 ok, 1 runtime failure, 2 bad input — clap's own usage errors also exit 2).
pub fn run() -> ExitCode {
    let args = cli::rewrite_output_file(std::env::args_os().collect());
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Help, completions and offline validation need no async runtime: keep them fast.
    if let Some(result) = cmd::run_offline(&cli) {
        return finish(result);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return error::report(&anyhow::anyhow!("starting the async runtime: {e}")),
    };
    finish(runtime.block_on(cmd::run(cli)))
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => error::report(&e),
    }
}

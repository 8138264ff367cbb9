//! `kubectl datajump`: the DataJump platform's life cycle from one kubectl plugin. The binary only
//! calls [`run`]; parsing lives in `cli`, each subcommand in `cmd/<noun>.rs` (the workflow verbs
//! in `cmd/workflow/`, reading files through `workflow_file`), cluster access in `kube/`, helm
//! command lines in `helm`, the support bundle's redaction in `redact`, and answers are printed
//! through `output`.

pub mod cli;
pub mod cmd;
pub mod error;
pub mod helm;
pub mod kube;
pub mod manifests;
pub mod output;
pub(crate) mod redact;
pub(crate) mod registry;
pub(crate) mod schema;
pub mod values;
pub mod workflow_file;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs the command and maps the outcome to an exit code
/// (0 ok, 1 runtime failure, 2 bad input — clap's own usage errors also exit 2). With `-o json`
/// or `-o yaml` a failure is one object on stderr (see [`error`]).
pub fn run() -> ExitCode {
    quiet_on_closed_stdout();
    let args = cli::rewrite_output_file(std::env::args_os().collect());
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, &args),
    };
    let format = cli.global.output.into();
    // Help, completions and offline validation need no async runtime: keep them fast.
    if let Some(result) = cmd::run_offline(&cli) {
        return finish(result, format);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let err = anyhow::anyhow!("starting the async runtime: {e}");
            return error::report(&err, format);
        }
    };
    finish(runtime.block_on(cmd::run(cli)), format)
}

fn finish(result: anyhow::Result<()>, format: output::Format) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => error::report(&e, format),
    }
}

/// Help and version are printed as clap prints them; a refused command line is bad input
/// (exit 2), as a JSON error object when the arguments ask for `-o json` (or yaml).
fn usage_error(e: clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    let format = cli::output_format_in(args);
    let shown_as_is = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if shown_as_is || format == output::Format::Table {
        e.exit()
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first).to_string();
    error::ErrorReport::usage(message).print(format)
}

/// `println!` panics when stdout's reader has gone (`| head`). Every answer goes through
/// `output::write_stdout`, which ends quietly instead; this hook does the same for a line printed
/// any other way (a dependency, streamed logs), so no closed pipe ever shows as a panic.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

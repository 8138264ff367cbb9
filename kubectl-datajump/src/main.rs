//! The `kubectl-datajump` binary: kubectl finds it on PATH and runs it as `kubectl datajump`.

fn main() -> std::process::ExitCode {
    kubectl_datajump::run()
}

//! Subcommands, one module each, and what they share: the resolved namespace and release names,
//! the confirmation rule for destructive verbs, the workloads' readiness table (install and
//! status), and the dispatch from the parsed command line.

pub mod backup;
pub(crate) mod completions;
pub(crate) mod diff;
pub mod images;
pub(crate) mod install;
pub(crate) mod report;
pub mod restore;
pub(crate) mod status;
pub(crate) mod uninstall;
pub mod workflow;

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, OnceLock};

use chart_gen::model::{Environment, names};

use crate::cli::{Cli, Command, ConfirmArgs, GlobalOpts};
use crate::error::InputError;
use crate::helm::Helm;
use crate::kube::edge_error::{self, Endpoint};
use crate::kube::release;
use crate::kube::rollout::WorkloadReadiness;
use crate::output::{self, Progress, Style};

/// What every command gets: the global flags and the progress channel; and, once it connects,
/// the cluster it talks to (named by the messages of errors at the cluster edge).
#[derive(Debug, Clone)]
pub struct Ctx {
    pub global: GlobalOpts,
    pub progress: Progress,
    endpoint: Arc<OnceLock<Endpoint>>,
}

impl Ctx {
    pub fn new(global: GlobalOpts) -> Self {
        let progress = Progress::new(global.output.into());
        Self {
            global,
            progress,
            endpoint: Arc::default(),
        }
    }

    /// The cluster the command connected to, if it did.
    pub(crate) fn endpoint(&self) -> Option<&Endpoint> {
        self.endpoint.get()
    }

    /// `--env`, required by commands that act on one environment.
    pub(crate) fn env(&self) -> Result<Environment, InputError> {
        self.global
            .env
            .ok_or_else(|| InputError::new("--env is required (dev, test, staging or prod)"))
    }

    /// `-n`, else `datajump-<env>`, else the kubeconfig context's namespace.
    pub(crate) fn namespace_or(&self, context_default: &str) -> String {
        self.global
            .namespace
            .clone()
            .or_else(|| self.global.env.map(Environment::default_namespace))
            .unwrap_or_else(|| context_default.to_string())
    }

    /// `-n`, else `datajump-<env>`; an input error when neither is given.
    pub(crate) fn namespace(&self) -> Result<String, InputError> {
        self.global
            .namespace
            .clone()
            .or_else(|| self.global.env.map(Environment::default_namespace))
            .ok_or_else(|| {
                InputError::new("pass --env (namespace datajump-<env>) or -n/--namespace")
            })
    }

    /// The chart's fullname for this release with the given merged values (their
    /// `nameOverride`/`fullnameOverride`), as the chart computes it; object names are
    /// `<fullname>-<component>`.
    pub(crate) fn fullname_for(&self, values: &serde_json::Value) -> String {
        let field = |key: &str| values.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        names::fullname(
            &self.global.release,
            field("nameOverride"),
            field("fullnameOverride"),
        )
    }

    /// The fullname of the installed release in `ns` (see [`release::installed_fullname`]).
    pub(crate) async fn installed_fullname(
        &self,
        client: &::kube::Client,
        ns: &str,
    ) -> anyhow::Result<String> {
        release::installed_fullname(client, ns, &self.global.release).await
    }

    pub(crate) async fn client(&self) -> anyhow::Result<::kube::Client> {
        let (client, endpoint) = crate::kube::connect(&self.global.target()).await?;
        let _ = self.endpoint.set(endpoint);
        Ok(client)
    }

    /// helm from `--helm` / `DATAJUMP_HELM` or PATH, pointed at the cluster we talk to.
    pub(crate) fn helm(&self) -> Result<Helm, InputError> {
        Helm::locate(
            self.global.helm.as_deref(),
            &self.global.target(),
            self.global.verbose(),
        )
    }
}

/// The components' readiness as a table (install's summary and `status` share it).
pub(crate) fn readiness_table(components: &[WorkloadReadiness], style: &Style) -> String {
    let rows: Vec<Vec<String>> = components
        .iter()
        .map(|c| {
            vec![
                c.component.clone(),
                format!("{}/{}", c.kind, c.name),
                format!("{}/{}", c.ready, c.desired),
                style.state(if c.rolled_out { "Ready" } else { "NotReady" }),
            ]
        })
        .collect();
    output::table(&["COMPONENT", "WORKLOAD", "READY", "STATE"], &rows)
}

/// Destructive verbs: prod needs `--confirm-env prod`; then `--yes`, or a typed confirmation
/// when a person is at the terminal. Without a terminal and without --yes it refuses.
pub(crate) fn confirm(
    env: Option<Environment>,
    action: &str,
    target: &str,
    args: &ConfirmArgs,
) -> Result<(), InputError> {
    if env == Some(Environment::Prod) && args.confirm_env.as_deref() != Some("prod") {
        return Err(InputError::new(format!(
            "refusing to {action} in prod without --confirm-env prod"
        )));
    }
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(InputError::new(format!(
            "{action} {target} needs --yes (no terminal to ask for confirmation)"
        )));
    }
    eprint!("{action} {target}? Type {target:?} to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| InputError::new(format!("reading confirmation: {e}")))?;
    if answer.trim() == target {
        Ok(())
    } else {
        Err(InputError::new(format!(
            "not confirmed: {action} {target} cancelled"
        )))
    }
}

/// Commands that need neither the cluster nor the async runtime; None for everything else.
pub(crate) fn run_offline(cli: &Cli) -> Option<anyhow::Result<()>> {
    match &cli.command {
        Command::Completions { shell } => Some(completions::run(*shell)),
        Command::Workflow(cmd) => workflow::run_offline(cmd, &cli.global),
        _ => None,
    }
}

/// Runs a parsed command line. Whatever verb failed at the cluster edge, the error is worded by
/// the one formatter in [`edge_error`].
pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx::new(cli.global);
    dispatch(&ctx, cli.command)
        .await
        .map_err(|e| edge_error::at_edge(e, ctx.endpoint()))
}

async fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Install(args) => install::run(ctx, &args, install::Verb::Install).await,
        Command::Upgrade(args) => install::run(ctx, &args, install::Verb::Upgrade).await,
        Command::Uninstall(args) => uninstall::run(ctx, &args).await,
        Command::Status => status::run(ctx).await,
        Command::Images(args) => images::run(ctx, &args).await,
        Command::Diff(args) => diff::run(ctx, &args).await,
        Command::Workflow(cmd) => workflow::run(ctx, cmd).await,
        Command::Backup(cmd) => backup::run(ctx, cmd).await,
        Command::Restore(args) => restore::run(ctx, &args).await,
        Command::Report(args) => report::run(ctx, &args).await,
        Command::Completions { shell } => completions::run(shell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_for_release(release: &str) -> Ctx {
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["kubectl-datajump", "--release", release, "status"])
            .expect("static arguments parse");
        Ctx::new(cli.global)
    }

    #[test]
    fn long_release_names_get_the_charts_fifty_character_fullname() {
        // 60 characters: the plain `<release>-<name>` an untruncating rule would give is 69
        // long, and cutting at 50 leaves a trailing dash the chart trims.
        let release = format!("{}-{}", "r".repeat(49), "x".repeat(10));
        assert_eq!(release.len(), 60);
        let ctx = ctx_for_release(&release);
        let none = serde_json::json!({});
        let full = ctx.fullname_for(&none);
        assert_eq!(full, "r".repeat(49));
        assert_eq!(full, names::fullname(&release, "", ""));

        let name_override = serde_json::json!({ "nameOverride": "dj" });
        assert_eq!(ctx.fullname_for(&name_override), "r".repeat(49));

        let long_override = serde_json::json!({ "fullnameOverride": "f".repeat(60) });
        assert_eq!(ctx.fullname_for(&long_override), "f".repeat(50));
    }

    #[test]
    fn prod_needs_confirm_env_even_with_yes() {
        let yes = ConfirmArgs {
            yes: true,
            confirm_env: None,
        };
        let err = confirm(Some(Environment::Prod), "restore", "datajump-prod", &yes).unwrap_err();
        assert!(err.to_string().contains("--confirm-env prod"));
        let both = ConfirmArgs {
            yes: true,
            confirm_env: Some("prod".into()),
        };
        assert!(confirm(Some(Environment::Prod), "restore", "datajump-prod", &both).is_ok());
        assert!(confirm(Some(Environment::Dev), "restore", "datajump-dev", &yes).is_ok());
    }
}

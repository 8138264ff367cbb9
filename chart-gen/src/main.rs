//! `chart-gen`: generate, check, validate, render and package the DataJump chart; fetch the
//! operators' CRDs.

mod commands;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chart_gen::generate::{self, CHART_DIR};
use chart_gen::helm::{Helm, TemplateRequest};
use chart_gen::model::Environment;
use chart_gen::pipeline::PipelineError;
use clap::{Args, Parser, Subcommand};

/// Exit code for problems found in the input (bad values, invalid objects, drift).
const EXIT_PROBLEMS: u8 = 2;

#[derive(Parser)]
#[command(
    name = "chart-gen",
    version,
    about = "Generate and validate the DataJump Helm chart"
)]
struct Cli {
    /// Repository root (default: the nearest parent directory holding chart-gen/Cargo.toml).
    #[arg(long, global = true, env = "DATAJUMP_REPO_ROOT")]
    repo_root: Option<PathBuf>,
    /// helm binary (default: $DATAJUMP_HELM, .tools/bin/helm, then helm on PATH).
    #[arg(long, global = true)]
    helm: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write charts/datajump and schemas/ from the model and templates.
    Generate,
    /// Exit 2 when the committed charts/ or schemas/ differ from what generate would write.
    Check,
    /// Validate values, rendered objects, CRD-backed resources and policy for environments.
    Validate(ValidateArgs),
    /// Render an environment's manifests to stdout (helm template).
    Render(RenderArgs),
    /// Package the chart (helm package) into a .tgz.
    Package(PackageArgs),
    /// Operator CRDs: download the pinned ones into the cache, write kubeconform schemas.
    Crds(commands::crds::CrdsArgs),
    /// Write Argo CD manifests (AppProject, one Application per environment) for the chart in an
    /// OCI repository, after validating every environment with the site's values.
    Argocd(Box<commands::argocd::ArgocdArgs>),
}

#[derive(Args)]
struct EnvSelection {
    /// One environment.
    #[arg(long, conflicts_with = "all")]
    env: Option<Environment>,
    /// Every environment (the default).
    #[arg(long)]
    all: bool,
}

impl EnvSelection {
    fn envs(&self) -> Vec<Environment> {
        match self.env {
            Some(e) => vec![e],
            None => Environment::ALL.to_vec(),
        }
    }
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    envs: EnvSelection,
    #[command(flatten)]
    crds: commands::CrdArgs,
    /// Extra values files, applied after the environment's file.
    #[arg(short = 'f', long = "values")]
    values: Vec<PathBuf>,
    /// Print timings per environment.
    #[arg(long)]
    timings: bool,
}

#[derive(Args)]
struct RenderArgs {
    /// Environment to render.
    #[arg(long)]
    env: Environment,
    /// Release name.
    #[arg(long, default_value = "datajump")]
    release: String,
    /// Namespace (default: datajump-<env>).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Extra values files, applied after the environment's file.
    #[arg(short = 'f', long = "values")]
    values: Vec<PathBuf>,
    /// Extra --set values.
    #[arg(long)]
    set: Vec<String>,
}

#[derive(Args)]
struct PackageArgs {
    /// Where to write the .tgz.
    #[arg(long, default_value = "dist")]
    destination: PathBuf,
    /// Chart version override (e.g. the release tag without its v).
    #[arg(long)]
    version: Option<String>,
}

fn find_repo_root(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    Ok(chart_gen::helm::checkout_root(&cwd).unwrap_or(cwd))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chart-gen: error: {e:#}");
            let bad_input = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<PipelineError>(),
                    Some(PipelineError::Yaml { .. } | PipelineError::Read { .. })
                )
            });
            ExitCode::from(if bad_input { EXIT_PROBLEMS } else { 1 })
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let root = find_repo_root(cli.repo_root)?;
    let helm = || Helm::locate(cli.helm.as_deref(), Some(&root));
    match cli.command {
        Command::Generate => {
            let files = generate::generate_all()?;
            let changed = generate::write(&root, &files)?;
            eprintln!(
                "chart-gen: {} files generated, {changed} changed",
                files.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check(&root),
        Command::Validate(args) => validate(&root, helm()?, args),
        Command::Render(args) => {
            let chart = root.join(CHART_DIR);
            let mut values = vec![chart.join(args.env.values_file_name())];
            values.extend(args.values);
            let namespace = args
                .namespace
                .unwrap_or_else(|| args.env.default_namespace());
            let out = helm()?.template(&TemplateRequest {
                release: &args.release,
                namespace: &namespace,
                chart: &chart,
                values,
                set: args.set,
            })?;
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Crds(args) => commands::crds::run(&root, args),
        Command::Argocd(args) => commands::argocd::run(&root, helm()?, *args),
        Command::Package(args) => {
            let dest = root.join(&args.destination);
            std::fs::create_dir_all(&dest)
                .with_context(|| format!("creating {}", dest.display()))?;
            let path = helm()?.package(&root.join(CHART_DIR), &dest, args.version.as_deref())?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(root: &Path) -> Result<ExitCode> {
    let files = generate::generate_all()?;
    let drift = generate::check(root, &files)?;
    if drift.is_clean() {
        eprintln!("chart-gen: {} generated files up to date", files.len());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &drift.changed {
        println!(
            "changed: {} (differs from what chart-gen generate writes)",
            p.display()
        );
    }
    for p in &drift.missing {
        println!("missing: {}", p.display());
    }
    for p in &drift.extra {
        println!("extra:   {} (not written by chart-gen)", p.display());
    }
    eprintln!(
        "chart-gen: generated files are out of date; run `chart-gen generate` and commit the result"
    );
    Ok(ExitCode::from(EXIT_PROBLEMS))
}

fn validate(root: &Path, helm: Helm, args: ValidateArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let pipeline = args.crds.pipeline(&root.join(CHART_DIR), helm)?;
    let envs = args.envs.envs();
    let mut total = 0;
    let mut objects = 0;
    for env in envs {
        let report = pipeline.run(env, &args.values)?;
        for p in &report.problems {
            println!("{p}");
        }
        if args.timings {
            eprintln!(
                "{env}: {} objects, helm {:.0?}, checks {:.1?}",
                report.objects.len(),
                report.helm_time,
                report.check_time
            );
        }
        total += report.problems.len();
        objects += report.objects.len();
    }
    let summary = format!(
        "{total} problems in {objects} objects ({:.2?})",
        started.elapsed()
    );
    if total > 0 {
        eprintln!("chart-gen: validate: {summary}");
        return Ok(ExitCode::from(EXIT_PROBLEMS));
    }
    eprintln!("chart-gen: validate: ok, {summary}");
    if objects == 0 {
        bail!("no objects were rendered");
    }
    Ok(ExitCode::SUCCESS)
}

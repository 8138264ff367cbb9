//! `chart-gen crds fetch` and `chart-gen crds schemas`; the work is done by [`chart_gen::crds`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use chart_gen::crds::fetch::{self, Downloader, Outcome};
use chart_gen::crds::schemas;
use chart_gen::crds::sources::DEFAULT_BASE_URL;
use chart_gen::crds::{CrdCache, Sources};
use chart_gen::generate::CHART_DIR;
use clap::{Args, Subcommand};

#[derive(Args)]
pub(crate) struct CrdsArgs {
    #[command(subcommand)]
    command: CrdsCommand,
}

#[derive(Subcommand)]
enum CrdsCommand {
    /// Download the pinned operator CRDs into the cache, checking each one's sha256; does nothing
    /// (and needs no network) once they are cached. Prints the cache directory.
    Fetch(FetchArgs),
    /// Write kubeconform's strict JSON schemas, DIR/<group>/<kind>_<version>.json, for every
    /// served version of the given CRDs.
    Schemas(SchemasArgs),
}

#[derive(Args)]
struct CacheArg {
    /// Root of the CRD cache (default: $XDG_CACHE_HOME/datajump/crds or ~/.cache/datajump/crds).
    #[arg(long = "cache-dir", value_name = "DIR", env = "DATAJUMP_CRD_CACHE")]
    root: Option<PathBuf>,
}

#[derive(Args)]
struct FetchArgs {
    #[command(flatten)]
    cache: CacheArg,
    /// Where sources are downloaded from, as <URL>/<repository>/<commit>/<path>; a file:// URL
    /// reads a local mirror with that layout.
    #[arg(long, env = "DATAJUMP_CRD_BASE_URL", default_value = DEFAULT_BASE_URL)]
    base_url: String,
}

#[derive(Args)]
struct SchemasArgs {
    /// Directory to write the schemas into.
    #[arg(long)]
    out: PathBuf,
    /// CRD files or directories (default: the cache, and the chart's own crds/).
    src: Vec<PathBuf>,
    #[command(flatten)]
    cache: CacheArg,
}

pub(crate) fn run(root: &Path, args: CrdsArgs) -> Result<ExitCode> {
    let sources = Sources::pinned()?;
    match args.command {
        CrdsCommand::Fetch(args) => fetch(&sources, args),
        CrdsCommand::Schemas(args) => write_schemas(root, &sources, args),
    }
}

fn fetch(sources: &Sources, args: FetchArgs) -> Result<ExitCode> {
    let cache = CrdCache::locate(args.cache.root)?;
    let mut progress = |url: &str| eprintln!("chart-gen: downloading {url}");
    let outcome = fetch::fetch(
        sources,
        &cache,
        &args.base_url,
        &Downloader::default(),
        &mut progress,
    )?;
    let dir = match outcome {
        Outcome::UpToDate { dir } => {
            eprintln!("chart-gen: operator CRDs already cached, checksums match");
            dir
        }
        Outcome::Fetched {
            dir,
            crds,
            downloads,
        } => {
            eprintln!("chart-gen: {crds} CRDs from {downloads} downloads, checksums match");
            dir
        }
    };
    println!("{}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn write_schemas(root: &Path, sources: &Sources, args: SchemasArgs) -> Result<ExitCode> {
    let inputs = if args.src.is_empty() {
        let cache = CrdCache::locate(args.cache.root)?;
        vec![
            cache.require_complete(sources)?,
            root.join(CHART_DIR).join("crds"),
        ]
    } else {
        args.src
    };
    let written = schemas::write_schemas(&inputs, &args.out)?;
    eprintln!(
        "chart-gen: wrote {} schemas to {}",
        written.files.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

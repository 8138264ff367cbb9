//! `images`: list an environment's images, and move them into a private registry — `mirror`
//! over the network, `save` + `load` across an air gap, `lock` to pin what was mirrored.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ChartArgs;

/// `images [list|mirror|save|load|lock]`; without a verb it lists.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub action: Option<ImagesCommand>,
    #[command(flatten)]
    pub chart: ChartArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ImagesCommand {
    /// Every image the environment runs, where it comes from, and the Harbor projects the
    /// mirrored paths need (the default).
    List(ChartArgs),
    /// Copy every image of the environment from its upstream registry into a private one.
    #[command(after_help = MIRROR_HELP)]
    Mirror(MirrorArgs),
    /// Write every image of the environment and the chart into one OCI image layout archive,
    /// for a site with no connection at all.
    #[command(after_help = SAVE_HELP)]
    Save(SaveArgs),
    /// Push an archive written by `images save` into a private registry (verifying every blob
    /// first).
    Load(LoadArgs),
    /// Resolve every image in the private registry to its digest and write a values file that
    /// pins them.
    Lock(LockArgs),
}

const MIRROR_HELP: &str = "Examples:\n  kubectl datajump images mirror --env prod --to harbor.example.com/datajump --username 'robot$datajump' --password-stdin < token\n  kubectl datajump images mirror --env prod --to harbor.example.com --source-mirror docker.io=cache.example.com/dockerhub -o json\n\nThe tag of each image is written last, so an interrupted mirror never leaves a tag pointing at\nincomplete content; running it again copies only what is missing. Install with the same\nregistry: --set global.imageRegistry=HOST [--set global.imageProject=PROJECT], or the file\n`images lock` writes.";

const SAVE_HELP: &str = "Examples:\n  kubectl datajump images save --env prod -o datajump-prod.tar\n  kubectl datajump images load datajump-prod.tar --to harbor.example.com/datajump --ca-file harbor-ca.crt";

/// The registry written to (or read from, for `lock`): how to reach it and who we are there.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// User name for the private registry (else the Docker config, else `helm registry login`'s).
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password (or token) from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// PEM file of a CA to trust besides the system's (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
    /// Speak plain HTTP to the private registry (no TLS): only for a registry on a trusted
    /// network.
    #[arg(long)]
    pub plain_http: bool,
}

/// Where upstream images are read from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Read registry FROM's images from TO[/PREFIX] instead (repeatable), like containerd's
    /// registry mirrors: e.g. docker.io=cache.example.com/dockerhub.
    #[arg(long = "source-mirror", value_name = "FROM=TO")]
    pub source_mirror: Vec<String>,
    /// Speak plain HTTP to the source mirrors.
    #[arg(long)]
    pub source_plain_http: bool,
    /// Only these platforms of multi-platform images (os/arch[/variant], comma-separated or
    /// repeated); default: all. A filtered image gets a new index digest.
    #[arg(long, value_name = "PLATFORMS")]
    pub platform: Vec<String>,
    /// Blob transfers at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

#[derive(Debug, Clone, Args)]
pub struct MirrorArgs {
    #[command(flatten)]
    pub chart: ChartArgs,
    /// The private registry: HOST[:PORT] keeps upstream paths (one Harbor project per first
    /// path segment), HOST/PROJECT puts every image into one project.
    #[arg(long, value_name = "HOST[/PROJECT]")]
    pub to: String,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SaveArgs {
    #[command(flatten)]
    pub chart: ChartArgs,
    /// The archive to write (`-o FILE` works too, as with docker save).
    #[arg(long = "output-file", value_name = "FILE.tar")]
    pub output_file: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    /// PEM file of a CA to trust for the source registries (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The archive `images save` wrote.
    #[arg(value_name = "FILE.tar")]
    pub file: PathBuf,
    /// The private registry, HOST[:PORT][/PROJECT] as for `mirror`; the chart goes to
    /// oci://HOST[/PROJECT]/datajump.
    #[arg(long, value_name = "HOST[/PROJECT]")]
    pub to: String,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub chart: ChartArgs,
    /// The private registry holding the mirrored images, HOST[:PORT][/PROJECT].
    #[arg(long, value_name = "HOST[/PROJECT]")]
    pub registry: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The values file to write (`-o FILE` works too).
    #[arg(long = "output-file", value_name = "FILE")]
    pub output_file: PathBuf,
}

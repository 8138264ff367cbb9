//! Subcommands of the `chart-gen` binary that have a module of their own: each builds the
//! library's options from its flags and prints the answer.

pub(crate) mod argocd;
pub(crate) mod crds;

use std::path::{Path, PathBuf};

use anyhow::Result;
use chart_gen::crds::{self as crd_sources, OperatorCrds};
use chart_gen::helm::Helm;
use chart_gen::pipeline::Pipeline;
use clap::Args;

/// Where the operators' CRDs come from, for the commands that validate custom resources.
#[derive(Args)]
pub(crate) struct CrdArgs {
    /// Directory of operator CRD YAML files to validate custom resources against (default: the
    /// cache `chart-gen crds fetch` fills).
    #[arg(long, env = "DATAJUMP_CRD_DIR")]
    pub crd_dir: Option<PathBuf>,
    /// Root of the CRD cache (default: $XDG_CACHE_HOME/datajump/crds or ~/.cache/datajump/crds).
    #[arg(long, value_name = "DIR", env = "DATAJUMP_CRD_CACHE")]
    pub crd_cache: Option<PathBuf>,
    /// Leave the operators' custom resources unchecked (wins over --crd-dir and the cache).
    #[arg(long)]
    pub no_crds: bool,
}

impl CrdArgs {
    /// The validation pipeline for `chart`, with these CRDs (or a warning that they are skipped).
    pub(crate) fn pipeline(&self, chart: &Path, helm: Helm) -> Result<Pipeline> {
        let operator =
            crd_sources::operator_crds(self.crd_dir.clone(), self.no_crds, self.crd_cache.clone())?;
        let mut pipeline = Pipeline::new(chart.to_path_buf(), helm, operator.dir())?;
        if let OperatorCrds::Skipped { groups } = operator {
            eprintln!(
                "chart-gen: warning: --no-crds: custom resources of {} are not checked against their CRDs",
                groups.join(", ")
            );
            pipeline.crds.skip_groups(groups);
        }
        Ok(pipeline)
    }
}

//! The operators' CRDs on a user's machine: the pinned upstream sources ([`sources`]), their
//! download and splitting into one CRD per file ([`fetch`], [`split`]), the per-user cache they are
//! kept in ([`cache`]), and kubeconform's JSON schemas made from them ([`schemas`]).
//!
//! `chart-gen crds fetch` fills the cache once (it needs network then, and never again);
//! `chart-gen validate` reads it unless `--crd-dir` names a local copy ([`operator_crds`]).

pub mod cache;
pub mod fetch;
pub mod schemas;
pub mod sources;
pub mod split;

use std::path::PathBuf;

use crate::validate::ValidateError;

pub use cache::CrdCache;
pub use sources::Sources;

/// Why fetching, caching or converting the operator CRDs failed. Every variant names what a user
/// needs to act on: the URL, the file, the directory.
#[derive(Debug, thiserror::Error)]
pub enum CrdsError {
    /// The pinned source list compiled into chart-gen is malformed (a bug in chart-gen).
    #[error("the pinned CRD source list (chart-gen/src/crds/sources.yaml) is invalid: {0}")]
    Sources(String),
    /// No place for the cache: none of DATAJUMP_CRD_CACHE, XDG_CACHE_HOME and HOME is set.
    #[error(
        "no directory for the CRD cache: set DATAJUMP_CRD_CACHE (or HOME), or pass --cache-dir"
    )]
    NoCacheDir,
    /// The base URL is neither http(s):// nor file://.
    #[error("unsupported base URL {0}: expected https://, http:// or file://")]
    BaseUrl(String),
    /// The server could not be reached (no network, DNS, TLS, timeout).
    #[error(
        "cannot download {url}: {message} (no network? `chart-gen crds fetch` must reach it once; \
         with a local copy of the CRDs, pass --crd-dir DIR to validate instead)"
    )]
    Unreachable { url: String, message: String },
    /// The server answered with an error status.
    #[error("cannot download {url}: HTTP status {status}")]
    HttpStatus { url: String, status: u16 },
    /// The response body could not be read, or is not UTF-8.
    #[error("cannot read the response from {url}: {message}")]
    Body { url: String, message: String },
    /// A file:// source could not be read.
    #[error("cannot read {url}: {source}")]
    ReadSource {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// A source holds no CustomResourceDefinition for a pinned file.
    #[error("{url} has no CustomResourceDefinition for {file}")]
    MissingCrd { url: String, file: String },
    /// A CRD's content is not the pinned one.
    #[error("checksum mismatch for {file} (from {url}): expected sha256 {expected}, got {actual}")]
    Checksum {
        file: String,
        url: String,
        expected: String,
        actual: String,
    },
    /// Reading or writing the cache (or a schema output) failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `validate` without `--crd-dir` found no cache.
    #[error(
        "the operator CRDs are not cached ({dir} does not exist): run `chart-gen crds fetch` once \
         (it needs network), or pass --crd-dir DIR with a local copy, or --no-crds to leave the \
         operators' custom resources unchecked"
    )]
    NotCached { dir: PathBuf },
    /// The cache directory lacks files (removed by hand): `crds fetch` repairs it.
    #[error(
        "the CRD cache {dir} is incomplete (missing {}): run `chart-gen crds fetch` to repair it, \
         or pass --crd-dir DIR",
        missing.join(", ")
    )]
    IncompleteCache { dir: PathBuf, missing: Vec<String> },
    /// `crds schemas` found no CRD in its inputs.
    #[error("no CustomResourceDefinition found in {0}")]
    NoCrds(String),
    /// A CRD file could not be read or converted.
    #[error(transparent)]
    Validate(#[from] ValidateError),
}

impl CrdsError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Where `chart-gen validate` takes the operators' CRDs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorCrds {
    /// A directory the user named (`--crd-dir`, `DATAJUMP_CRD_DIR`).
    Dir(PathBuf),
    /// The cache `chart-gen crds fetch` filled.
    Cache(PathBuf),
    /// Not checked (`--no-crds`): custom resources of these API groups pass unchecked.
    Skipped { groups: Vec<String> },
}

impl OperatorCrds {
    /// The directory to load, if any.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match self {
            Self::Dir(dir) | Self::Cache(dir) => Some(dir),
            Self::Skipped { .. } => None,
        }
    }
}

/// Decides where `validate` reads operator CRDs: `--no-crds` wins, then `--crd-dir`, then the
/// cache under `cache_root` (see [`CrdCache::locate`]), which must be complete. The cache is only
/// looked for when needed, so `--crd-dir` works on a machine without a cache directory.
pub fn operator_crds(
    crd_dir: Option<PathBuf>,
    no_crds: bool,
    cache_root: Option<PathBuf>,
) -> Result<OperatorCrds, CrdsError> {
    let sources = Sources::pinned()?;
    if no_crds {
        return Ok(OperatorCrds::Skipped {
            groups: sources.groups(),
        });
    }
    if let Some(dir) = crd_dir {
        return Ok(OperatorCrds::Dir(dir));
    }
    let cache = CrdCache::locate(cache_root)?;
    cache.require_complete(&sources).map(OperatorCrds::Cache)
}

//! The log archive (Argo's): each finished task pod's log is stored in an S3 bucket before the
//! scheduler deletes the pod, and served back on the HTTP port for `kubectl datajump workflow
//! logs` once the pod is gone (through the API server's service proxy, so readers need no S3
//! credentials).
//!
//! - `key`: where an attempt's log lives, `<prefix>/<namespace>/<workflow>/<run>/<task>/<attempt>.log`;
//! - `sigv4`: request signing; `s3`: the streaming client (bounded memory whatever the log's
//!   size: one multipart part at a time);
//! - here: [`LogArchive`], the bucket and prefix the scheduler was started with.
//!
//! Which pods are archived and when (and when a failing archive is given up) is the planner's
//! decision (`plan::LogArchiving`); reading the pod's log is the controller's.

mod key;
pub mod s3;
pub mod sigv4;

use futures::AsyncRead;
use hyper::body::Incoming;

pub use key::{BadSegment, LogKey};
pub use s3::{Bucket, CredentialSource, PART_SIZE, S3Error};

/// What the scheduler's flags say about the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// `http(s)://host[:port]`.
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Region for signing.
    pub region: String,
    /// Key prefix (may be empty).
    pub key_prefix: String,
    /// File holding the access key ID.
    pub access_key_file: String,
    /// File holding the secret access key.
    pub secret_key_file: String,
    /// PEM file of a private endpoint's CA.
    pub ca_file: Option<String>,
    /// Seconds past a pod's retention after which a failing archive is given up (0: never).
    pub give_up_after_seconds: u32,
}

/// Why the archive could not be set up at startup.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveSetupError {
    /// The CA file could not be read.
    #[error("log archive CA {path}: {source}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The endpoint or CA is unusable.
    #[error("log archive: {0}")]
    S3(#[from] S3Error),
}

/// The bucket and prefix task logs go to.
pub struct LogArchive {
    bucket: Bucket,
    prefix: String,
}

impl std::fmt::Debug for LogArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogArchive")
            .field("at", &self.bucket.url(&self.prefix))
            .finish()
    }
}

impl LogArchive {
    /// The archive `config` describes; its CA file is read now (the credentials at each
    /// upload, so that a rotated Secret is picked up).
    pub fn new(config: &ArchiveConfig) -> Result<Self, ArchiveSetupError> {
        let ca = match &config.ca_file {
            Some(path) => Some((
                path.as_str(),
                std::fs::read(path).map_err(|source| ArchiveSetupError::CaFile {
                    path: path.clone(),
                    source,
                })?,
            )),
            None => None,
        };
        let bucket = Bucket::new(
            &config.endpoint,
            &config.bucket,
            &config.region,
            CredentialSource::Files {
                access_key: config.access_key_file.clone(),
                secret_key: config.secret_key_file.clone(),
            },
            ca.as_ref().map(|(p, pem)| (*p, pem.as_slice())),
        )?;
        Ok(Self::with_bucket(bucket, &config.key_prefix))
    }

    /// The archive in `bucket` under `prefix`.
    pub fn with_bucket(bucket: Bucket, prefix: &str) -> Self {
        Self {
            bucket,
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    /// Where `key` is stored, for messages (`s3://bucket/prefix/…`).
    pub fn url(&self, key: &LogKey) -> String {
        self.bucket.url(&key.object_key(&self.prefix))
    }

    /// Stores the log read from `log` under `key`, streamed; returns its size in bytes.
    pub async fn store<R: AsyncRead + Unpin>(&self, key: &LogKey, log: R) -> Result<u64, S3Error> {
        self.bucket
            .put_stream(&key.object_key(&self.prefix), log, PART_SIZE)
            .await
    }

    /// The stored log of `key` (its length if known, and its body as a stream), or `None`.
    pub async fn open(&self, key: &LogKey) -> Result<Option<(Option<u64>, Incoming)>, S3Error> {
        self.bucket.get(&key.object_key(&self.prefix)).await
    }
}

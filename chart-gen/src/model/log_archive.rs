//! The scheduler's log archive (Argo's): where each finished task pod's log is stored before
//! the scheduler deletes the pod, so `kubectl datajump workflow logs` can still show it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Secret holding the archive's S3 credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogArchiveCredentials {
    /// Secret in the release namespace; empty = the platform's credentials Secret, with its
    /// `minio-access-key` and `minio-secret-key` (for the chart's own object store).
    pub secret_name: String,
    /// Key of the access key ID in `secretName` (ignored when it is empty).
    #[schemars(length(min = 1), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub access_key_key: String,
    /// Key of the secret access key in `secretName` (ignored when it is empty).
    #[schemars(length(min = 1), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub secret_key_key: String,
}

/// The CA that signed a private endpoint's certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogArchiveCa {
    /// ConfigMap in the release namespace holding the CA certificate (PEM); empty = the
    /// public roots compiled into the scheduler (Mozilla's list).
    pub config_map_name: String,
    /// Key of the certificate in `configMapName`.
    #[schemars(length(min = 1), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// The log archive: each finished task pod's log is saved to an S3 bucket under
/// `<keyPrefix>/<namespace>/<workflow>/<run>/<task>/<attempt>.log` before the pod is deleted
/// (`executor.finishedPodRetentionSeconds`); `kubectl datajump workflow logs` reads it there
/// through the scheduler once the pod is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogArchive {
    /// Archive task logs. A pod is deleted only once its log is stored; a failed upload is
    /// retried (Warning event `LogArchiveFailed`, metric
    /// `scheduler_log_archive_failures_total`) until `giveUpAfterSeconds`.
    pub enabled: bool,
    /// S3 endpoint URL, requests path-style (`https://s3.eu-west-1.amazonaws.com`,
    /// `https://minio.storage.example:9000`); empty = the chart's own object store (`minio`,
    /// whatever its mode), whose bucket set-up then also creates `bucket` in `embedded` mode.
    #[schemars(regex(pattern = r"^(https?://[^/\s]+)?$"))]
    pub endpoint: String,
    /// Bucket the logs go to.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// Region for request signing (SigV4).
    #[schemars(length(min = 1))]
    pub region: String,
    /// Key prefix, without leading or trailing `/` (`datajump/prod`); empty = keys start at the
    /// namespace.
    #[schemars(regex(pattern = r"^([^/\s]+(/[^/\s]+)*)?$"))]
    pub key_prefix: String,
    /// Where the S3 credentials come from.
    pub credentials: LogArchiveCredentials,
    /// The CA of a private endpoint.
    pub ca: LogArchiveCa,
    /// How long the scheduler keeps trying once a pod is due for deletion while the archive
    /// fails: past `finishedPodRetentionSeconds` plus this, the pod is deleted without its log
    /// being archived (Warning event `LogNotArchived`, metric
    /// `scheduler_log_archive_given_up_total`), so an archive down for days does not
    /// keep every finished pod. 0 = never give up (pods stay until the archive is back).
    #[schemars(range(max = 2592000))]
    pub give_up_after_seconds: u32,
    /// With `networkPolicy.enabled` and an `endpoint` outside the cluster: the CIDRs of its
    /// addresses, which the scheduler may then reach on the endpoint's port.
    pub endpoint_cidrs: Vec<String>,
}

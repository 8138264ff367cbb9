//! What can go wrong with a registry, in words a platform engineer can act on: which registry,
//! which credentials, which certificate, which image.

use oci_client::errors::{OciDistributionError, OciErrorCode};

/// A registry operation that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryError {
    /// 401: the credentials were refused (or none were given).
    #[error(
        "{registry}: the registry refused the credentials ({credentials}); check the user and password, or log in with `helm registry login {registry}`"
    )]
    Unauthorized {
        registry: String,
        credentials: String,
    },
    /// 403, or Harbor's "project not found" on a push.
    #[error(
        "{reference}: denied ({detail}); with Harbor, check that the project exists and that {credentials} may push to it (`kubectl datajump images --env E` lists the projects)"
    )]
    Denied {
        reference: String,
        credentials: String,
        detail: String,
    },
    /// The certificate did not verify.
    #[error(
        "{registry}: TLS certificate not trusted ({detail}); pass the registry's CA with --ca-file (or --plain-http for a registry without TLS)"
    )]
    Tls { registry: String, detail: String },
    /// No connection, or it broke off.
    #[error("{registry}: cannot connect, or the connection was lost ({detail})")]
    Unreachable { registry: String, detail: String },
    /// The manifest or blob does not exist.
    #[error("{what}: not found in the registry")]
    NotFound { what: String },
    /// A file or manifest that is not what it claims to be.
    #[error("{0}")]
    Invalid(String),
    /// Anything else the registry answered.
    #[error("{what}: {detail}")]
    Other { what: String, detail: String },
}

impl RegistryError {
    /// Turns a client error into one of ours; `what` names the image or blob, `registry` its
    /// host and `credentials` where the credentials came from (never the secret itself).
    pub(crate) fn from_oci(
        err: OciDistributionError,
        what: &str,
        registry: &str,
        credentials: &str,
    ) -> Self {
        let registry = registry.to_string();
        let credentials = credentials.to_string();
        match err {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => Self::Unauthorized {
                registry,
                credentials,
            },
            OciDistributionError::ImageManifestNotFoundError(_) => Self::NotFound {
                what: what.to_string(),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let detail = envelope.to_string();
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized))
                {
                    Self::Unauthorized {
                        registry,
                        credentials,
                    }
                } else if codes.iter().any(|c| matches!(c, OciErrorCode::Denied)) {
                    Self::Denied {
                        reference: what.to_string(),
                        credentials,
                        detail,
                    }
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    Self::NotFound {
                        what: what.to_string(),
                    }
                } else {
                    Self::Other {
                        what: what.to_string(),
                        detail,
                    }
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                401 => Self::Unauthorized {
                    registry,
                    credentials,
                },
                403 => Self::Denied {
                    reference: what.to_string(),
                    credentials,
                    detail: first_line(&message),
                },
                404 => Self::NotFound {
                    what: what.to_string(),
                },
                _ => Self::Other {
                    what: what.to_string(),
                    detail: format!("HTTP {code}: {}", first_line(&message)),
                },
            },
            OciDistributionError::RequestError(e) => Self::from_request(&e, what, registry),
            other => {
                // Errors from the body stream arrive wrapped; look inside for the transport cause.
                let detail = error_chain(&other);
                Self::Other {
                    what: what.to_string(),
                    detail,
                }
            }
        }
    }

    fn from_request(e: &(dyn std::error::Error + 'static), what: &str, registry: String) -> Self {
        let detail = error_chain(e);
        let lower = detail.to_lowercase();
        let any = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        if any(&["certificate", "unknownissuer"]) {
            Self::Tls { registry, detail }
        } else if any(&["connect", "closed", "reset", "eof", "dns", "timed out"]) {
            Self::Unreachable { registry, detail }
        } else {
            Self::Other {
                what: what.to_string(),
                detail,
            }
        }
    }
}

/// An error and its causes on one line, de-duplicated (reqwest repeats its cause in `Display`).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

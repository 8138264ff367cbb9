//! The contract between the chart and `kubectl datajump` for shipping logs to a secured
//! Elasticsearch. Fluent Bit runs in its own namespace (it reads the nodes' log files as root),
//! so it cannot mount the Secrets in the release namespace that hold the Elasticsearch
//! credentials and CA. The chart declares, on the Fluent Bit DaemonSet, which Secret it mounts
//! and where its contents come from; the plugin keeps that Secret in sync. Both sides read these
//! constants (the chart through the generator), so they cannot drift apart.

use serde::Serialize;

/// Names and keys both sides use.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LogShipping {
    /// The file-realm user Fluent Bit signs in as with an operator-managed (ECK) Elasticsearch.
    pub username: &'static str,
    /// The role the chart grants that user: create indices and write documents under the
    /// configured prefix, nothing else.
    pub role: &'static str,
    /// Key of the mounted Secret holding Fluent Bit `@SET` lines for the user and password.
    pub conf_key: &'static str,
    /// Key of the mounted Secret holding the CA that signed Elasticsearch's HTTP certificate.
    pub ca_key: &'static str,
    /// DaemonSet annotation: the Secret in Fluent Bit's namespace that the pods mount.
    pub secret_annotation: &'static str,
    /// DaemonSet annotation: `<namespace>/<secret>` holding `username` and `password`.
    pub credentials_annotation: &'static str,
    /// DaemonSet annotation: `<namespace>/<secret>` holding `ca.crt`.
    pub ca_annotation: &'static str,
    /// Fluent Bit configuration variables set by `conf_key`.
    pub user_variable: &'static str,
    pub password_variable: &'static str,
}

pub const LOG_SHIPPING: LogShipping = LogShipping {
    username: "datajump-log-writer",
    role: "datajump_log_writer",
    conf_key: "es.conf",
    ca_key: "ca.crt",
    secret_annotation: "datajump.io/es-secret",
    credentials_annotation: "datajump.io/es-credentials-from",
    ca_annotation: "datajump.io/es-ca-from",
    user_variable: "ES_USER",
    password_variable: "ES_PASSWORD",
};

/// Why a credential cannot be written into Fluent Bit's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Elasticsearch {what} for Fluent Bit contains {found}, which its configuration cannot hold (use printable characters without spaces)"
)]
pub struct UnsafeCredential {
    pub what: &'static str,
    pub found: &'static str,
}

/// The `conf_key` file: `@SET` lines Fluent Bit reads before its sections. `@SET` takes the
/// rest of the line as the value, so only line breaks, other control characters and spaces
/// (trimmed by Fluent Bit) are refused.
pub fn conf_file(username: &str, password: &str) -> Result<String, UnsafeCredential> {
    for (what, value) in [("user name", username), ("password", password)] {
        if value.is_empty() {
            return Err(UnsafeCredential {
                what,
                found: "nothing",
            });
        }
        if value.chars().any(char::is_control) {
            return Err(UnsafeCredential {
                what,
                found: "a control character",
            });
        }
        if value.chars().any(char::is_whitespace) {
            return Err(UnsafeCredential {
                what,
                found: "a space",
            });
        }
    }
    let LogShipping {
        user_variable,
        password_variable,
        ..
    } = LOG_SHIPPING;
    Ok(format!(
        "@SET {user_variable}={username}\n@SET {password_variable}={password}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conf_file_sets_both_variables() {
        assert_eq!(
            conf_file("writer", "s3cr#t=1").unwrap(),
            "@SET ES_USER=writer\n@SET ES_PASSWORD=s3cr#t=1\n"
        );
    }

    #[test]
    fn values_that_would_break_the_file_are_refused() {
        let err = conf_file("writer", "a\nb").unwrap_err();
        assert_eq!(err.what, "password");
        assert!(err.to_string().contains("control character"), "{err}");
        assert_eq!(conf_file("a b", "x").unwrap_err().found, "a space");
        assert_eq!(conf_file("", "x").unwrap_err().found, "nothing");
    }
}

//! The Kubernetes releases DataJump supports, in one place. The chart's `kubeVersion`, the
//! plugin's preflight, validation, the generated docs and the kind job in CI all read these
//! constants (a test keeps the CI matrix and the README in step with them).
//!
//! The range is what providers still run in December 2026: 1.33 (still offered by the large
//! managed services on extended support) to 1.37, the newest upstream release — the same span
//! as the `k8s-openapi` 0.29 release the code is built against (feature `v1_37`).

use std::fmt;

/// A Kubernetes 1.x minor release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubeMinor(pub u32);

impl fmt::Display for KubeMinor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.0)
    }
}

/// The oldest release the chart installs on: no object may use an API this release lacks.
pub const OLDEST_SUPPORTED: KubeMinor = KubeMinor(33);

/// The newest release the project is tested against. Newer clusters are not locked out (the
/// chart states only a lower bound); the plugin warns that they are untested.
pub const NEWEST_TESTED: KubeMinor = KubeMinor(37);

/// Chart.yaml `kubeVersion`: a lower bound only. The `-0` suffix lets pre-release and
/// provider builds (`v1.33.2-eks-…`, `v1.34.1-gke.…`) match, which a plain `>=1.33.0` refuses.
pub fn chart_kube_version() -> String {
    format!(">={OLDEST_SUPPORTED}.0-0")
}

/// "1.33–1.37", for messages and docs.
pub fn supported_range() -> String {
    format!("{OLDEST_SUPPORTED}–{NEWEST_TESTED}")
}

/// How a cluster's version relates to the supported range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Older than [`OLDEST_SUPPORTED`]: the chart refuses to install.
    TooOld(KubeMinor),
    /// Within the tested range.
    Supported(KubeMinor),
    /// Newer than [`NEWEST_TESTED`]: allowed, but untested.
    NewerThanTested(KubeMinor),
}

/// Why a server version could not be classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read Kubernetes version {major:?}.{minor:?}: expected major 1 and a numeric minor")]
pub struct UnreadableVersion {
    pub major: String,
    pub minor: String,
}

/// Classifies the `major`/`minor` the API server reports (`/version`). Managed services append
/// a `+` to the minor (`"33+"`), which is accepted.
pub fn classify(major: &str, minor: &str) -> Result<Support, UnreadableVersion> {
    let unreadable = || UnreadableVersion {
        major: major.into(),
        minor: minor.into(),
    };
    if major != "1" {
        return Err(unreadable());
    }
    let minor = KubeMinor(
        minor
            .trim_end_matches('+')
            .parse()
            .map_err(|_| unreadable())?,
    );
    Ok(if minor < OLDEST_SUPPORTED {
        Support::TooOld(minor)
    } else if minor > NEWEST_TESTED {
        Support::NewerThanTested(minor)
    } else {
        Support::Supported(minor)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_states_only_a_lower_bound() {
        assert_eq!(chart_kube_version(), ">=1.33.0-0");
        assert!(!chart_kube_version().contains('<'));
    }

    #[test]
    fn classification_covers_both_edges() {
        assert_eq!(classify("1", "32"), Ok(Support::TooOld(KubeMinor(32))));
        assert_eq!(classify("1", "33"), Ok(Support::Supported(KubeMinor(33))));
        assert_eq!(classify("1", "36+"), Ok(Support::Supported(KubeMinor(36))));
        assert_eq!(classify("1", "37"), Ok(Support::Supported(KubeMinor(37))));
        assert_eq!(
            classify("1", "38"),
            Ok(Support::NewerThanTested(KubeMinor(38)))
        );
        assert!(classify("2", "0").is_err());
        assert!(classify("1", "x").is_err());
    }
}

//! The four environments DataJump is deployed to. Each has a profile (see `profiles.rs`) and a
//! values file `values-<env>.yaml` in the generated chart.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A deployment environment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Developer sandboxes: minimal, embedded infrastructure, one replica, no autoscaling.
    Dev,
    /// Functional testing: medium sizing.
    Test,
    /// Pre-production: close to prod, on a subset of production data.
    Staging,
    /// Production: the reference architecture's full configuration.
    Prod,
}

impl Environment {
    /// Every environment, in promotion order.
    pub const ALL: [Environment; 4] = [Self::Dev, Self::Test, Self::Staging, Self::Prod];

    /// The lowercase name used in file names, namespaces and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Test => "test",
            Self::Staging => "staging",
            Self::Prod => "prod",
        }
    }

    /// The namespace the platform is installed into by default: `datajump-<env>`.
    pub fn default_namespace(self) -> String {
        format!("datajump-{}", self.as_str())
    }

    /// The values file for this environment inside the chart directory.
    pub fn values_file_name(self) -> String {
        format!("values-{}.yaml", self.as_str())
    }

    /// Staging and prod carry production-grade availability rules (PDBs, no memory overcommit).
    pub fn is_production_grade(self) -> bool {
        matches!(self, Self::Staging | Self::Prod)
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for an environment name that is not one of dev, test, staging, prod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown environment {0:?}: expected one of dev, test, staging, prod")]
pub struct UnknownEnvironment(pub String);

impl FromStr for Environment {
    type Err = UnknownEnvironment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEnvironment(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_rejects_others() {
        for env in Environment::ALL {
            assert_eq!(env.as_str().parse::<Environment>(), Ok(env));
        }
        let err = "production".parse::<Environment>().unwrap_err();
        assert!(err.to_string().contains("dev, test, staging, prod"));
    }
}

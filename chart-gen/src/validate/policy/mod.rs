//! The platform's policy over a rendered environment: pod security (every environment),
//! availability (staging and prod) and chart conventions (labels, namespaces).
//!
//! Security rules can be waived for one pod template, rule by rule, with the annotation
//! `datajump.io/policy-exception: "<rule>[,<rule>]: <reason>"` on the pod template; the reason is
//! mandatory and an exception never waives a rule it does not name. Availability and convention
//! rules cannot be waived.

mod availability;
mod conventions;
mod exception;
mod security;
mod selector;
mod workload;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::Problem;
use crate::model::Environment;

pub use exception::EXCEPTION_ANNOTATION;

/// A security rule that a pod template can be excepted from, by this name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyRule {
    /// runAsNonRoot true and runAsUser >= 10000 (pod or container level); the pod itself never
    /// sets runAsUser 0.
    RunAsNonRoot,
    /// readOnlyRootFilesystem true on every container.
    ReadOnlyRootFilesystem,
    /// allowPrivilegeEscalation false on every container.
    PrivilegeEscalation,
    /// capabilities.drop contains ALL, and nothing but NET_BIND_SERVICE is added, on every
    /// container.
    Capabilities,
    /// seccompProfile RuntimeDefault (pod or container level).
    Seccomp,
    /// No privileged container.
    Privileged,
    /// cpu and memory requests and limits on every container.
    Resources,
    /// liveness and readiness probes on every container of a long-running workload.
    Probes,
    /// Images with an explicit tag other than `latest`, or a digest.
    ImageTag,
    /// No hostPath volume.
    HostPath,
    /// No hostNetwork.
    HostNetwork,
    /// No hostPID.
    HostPid,
    /// No hostIPC.
    HostIpc,
    /// No container port bound to a host port.
    HostPort,
    /// The service-account token is mounted only for service accounts bound to a role.
    ServiceAccountToken,
}

impl PolicyRule {
    /// Every rule, in report order.
    pub const ALL: [PolicyRule; 15] = [
        Self::RunAsNonRoot,
        Self::ReadOnlyRootFilesystem,
        Self::PrivilegeEscalation,
        Self::Capabilities,
        Self::Seccomp,
        Self::Privileged,
        Self::Resources,
        Self::Probes,
        Self::ImageTag,
        Self::HostPath,
        Self::HostNetwork,
        Self::HostPid,
        Self::HostIpc,
        Self::HostPort,
        Self::ServiceAccountToken,
    ];

    /// The name used in exception annotations and in messages (`[run-as-non-root] ...`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunAsNonRoot => "run-as-non-root",
            Self::ReadOnlyRootFilesystem => "read-only-root-filesystem",
            Self::PrivilegeEscalation => "privilege-escalation",
            Self::Capabilities => "capabilities",
            Self::Seccomp => "seccomp",
            Self::Privileged => "privileged",
            Self::Resources => "resources",
            Self::Probes => "probes",
            Self::ImageTag => "image-tag",
            Self::HostPath => "host-path",
            Self::HostNetwork => "host-network",
            Self::HostPid => "host-pid",
            Self::HostIpc => "host-ipc",
            Self::HostPort => "host-port",
            Self::ServiceAccountToken => "service-account-token",
        }
    }
}

impl fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|r| r.as_str()).collect();
                format!(
                    "unknown policy rule {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Every policy problem in one environment's rendered objects.
pub fn check(env: Environment, objects: &[Value]) -> Vec<Problem> {
    let render = workload::Render::index(objects);
    let mut problems = Vec::new();
    for obj in objects {
        problems.extend(conventions::check(env, obj));
    }
    problems.extend(security::check(env, &render));
    if env.is_production_grade() {
        problems.extend(availability::check(env, &render));
    }
    problems
}

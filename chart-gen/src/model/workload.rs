//! Building blocks shared by every workload: image, resources, probes, autoscaling, disruption
//! budget, placement and service settings, and the platform-service type built from them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, EnvVar, PodSecurityContext, SeccompProfile, SecurityContext,
    Toleration, Volume, VolumeMount,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pod::{PodAnnotations, PodLabels};
use super::quantity::{Cpu, Memory};

/// Container image reference. The registry is `global.imageRegistry` when that is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    /// Registry used when `global.imageRegistry` is empty.
    pub registry: String,
    /// Repository inside the registry, e.g. `datajump/web`.
    #[schemars(length(min = 1))]
    pub repository: String,
    /// Explicit tag. `latest` is refused: every deployment must name what it runs.
    #[schemars(regex(pattern = r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$"))]
    #[schemars(extend("not" = { "const": "latest" }, "examples" = ["1.4.2"]))]
    pub tag: String,
    /// Optional content digest (`sha256:<64 hex>`); when set the image is pulled by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    #[schemars(extend("examples" = [
        "sha256:4c1e5b0ad0a4b4c1a5f0f8e6a6d2f6c9e3b3d1f6a0e2c4b6d8f0a2c4e6b8d0f2"
    ]))]
    pub digest: Option<String>,
    /// Kubernetes image pull policy.
    pub pull_policy: PullPolicy,
}

impl Image {
    /// An image from `registry/repository:tag`, pulled if not present.
    pub fn new(registry: &str, repository: &str, tag: &str) -> Self {
        Self {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: None,
            pull_policy: PullPolicy::IfNotPresent,
        }
    }
}

/// When the kubelet pulls the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every container start.
    Always,
    /// Pull only when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// CPU and memory for one side (requests or limits).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceAmounts {
    /// CPU amount.
    pub cpu: Cpu,
    /// Memory amount.
    pub memory: Memory,
}

/// Container resources. Both requests and limits are always set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// What the scheduler reserves on a node.
    pub requests: ResourceAmounts,
    /// The most the container may use.
    pub limits: ResourceAmounts,
}

impl Resources {
    /// Requests equal to limits (Guaranteed QoS).
    pub fn guaranteed(cpu: Cpu, memory: Memory) -> Self {
        let amounts = ResourceAmounts { cpu, memory };
        Self {
            requests: amounts,
            limits: amounts,
        }
    }

    /// Requests and limits as given.
    pub fn new(requests: (Cpu, Memory), limits: (Cpu, Memory)) -> Self {
        Self {
            requests: ResourceAmounts {
                cpu: requests.0,
                memory: requests.1,
            },
            limits: ResourceAmounts {
                cpu: limits.0,
                memory: limits.1,
            },
        }
    }

    /// Requests = limits / ratio (seed 003's overcommit for dev and test clusters).
    pub fn overcommitted(self, overcommit: Overcommit) -> Self {
        Self {
            requests: ResourceAmounts {
                cpu: self.limits.cpu.divided_by(overcommit.cpu),
                memory: self.limits.memory.divided_by(overcommit.memory),
            },
            limits: self.limits,
        }
    }
}

/// Overcommit ratios: requests = limits / ratio. 1.0 means no overcommit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overcommit {
    /// CPU ratio (>= 1).
    pub cpu: f64,
    /// Memory ratio (>= 1). Staging and prod keep this at 1: memory overcommit gets pods killed.
    pub memory: f64,
}

/// An HTTP probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// HTTP path probed on the container port.
    pub path: String,
    /// Seconds before the first probe.
    pub initial_delay_seconds: u32,
    /// Seconds between probes.
    #[schemars(range(min = 1))]
    pub period_seconds: u32,
    /// Seconds before a probe times out.
    #[schemars(range(min = 1))]
    pub timeout_seconds: u32,
    /// Consecutive failures before the probe fails.
    #[schemars(range(min = 1))]
    pub failure_threshold: u32,
}

impl HttpProbe {
    /// A probe on `path` with the given delay and period.
    pub fn new(path: &str, initial_delay_seconds: u32, period_seconds: u32) -> Self {
        Self {
            path: path.into(),
            initial_delay_seconds,
            period_seconds,
            timeout_seconds: 3,
            failure_threshold: 3,
        }
    }
}

/// A startup probe: liveness and readiness wait until it has succeeded once, so a slow start
/// gets its own budget (`periodSeconds` × `failureThreshold`) instead of a long liveness delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartupProbe {
    /// Render the startup probe. Off, give `liveness.initialDelaySeconds` the start-up time.
    pub enabled: bool,
    /// HTTP path probed on the container port.
    pub path: String,
    /// Seconds between probes.
    #[schemars(range(min = 1))]
    pub period_seconds: u32,
    /// Seconds before a probe times out.
    #[schemars(range(min = 1))]
    pub timeout_seconds: u32,
    /// Failures before the container is restarted; the start-up budget is this × `periodSeconds`.
    #[schemars(range(min = 1))]
    pub failure_threshold: u32,
}

impl StartupProbe {
    /// Five minutes (30 × 10 s) on `path`: room for a Spring Boot service on a small node.
    pub fn spring_boot(path: &str) -> Self {
        Self {
            enabled: true,
            path: path.into(),
            period_seconds: 10,
            timeout_seconds: 3,
            failure_threshold: 30,
        }
    }
}

/// Startup, liveness and readiness probes; every long-running container has the last two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    /// Holds off liveness and readiness until the service has started.
    pub startup: StartupProbe,
    /// Restarts the container when it fails.
    pub liveness: HttpProbe,
    /// Removes the pod from Service endpoints when it fails.
    pub readiness: HttpProbe,
}

/// The pod security context every DataJump pod gets by default (Pod Security `restricted`, a
/// high UID and a group that owns the volumes).
pub fn hardened_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(10001),
        run_as_group: Some(10001),
        fs_group: Some(10001),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

/// The container security context every DataJump container gets by default: non-root, read-only
/// root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp.
pub fn hardened_container_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(10001),
        run_as_group: Some(10001),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// Horizontal Pod Autoscaler (autoscaling/v2) on CPU and memory utilisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscaling {
    /// Create an HPA; `replicas` is then only the initial size.
    pub enabled: bool,
    /// Lower bound of replicas.
    #[schemars(range(min = 1))]
    pub min_replicas: u32,
    /// Upper bound of replicas.
    #[schemars(range(min = 1))]
    pub max_replicas: u32,
    /// Target average CPU utilisation (percent of requests).
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: u32,
    /// Target average memory utilisation (percent of requests).
    #[schemars(range(min = 1, max = 100))]
    pub target_memory_utilization_percentage: u32,
}

impl Autoscaling {
    /// No HPA.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            min_replicas: 1,
            max_replicas: 1,
            target_cpu_utilization_percentage: 70,
            target_memory_utilization_percentage: 80,
        }
    }

    /// An HPA between `min` and `max` at the seed's CPU 70% / memory 80% targets.
    pub fn between(min: u32, max: u32) -> Self {
        Self {
            enabled: true,
            min_replicas: min,
            max_replicas: max,
            ..Self::disabled()
        }
    }
}

/// PodDisruptionBudget (policy/v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisruptionBudget {
    /// Create a PDB for this workload.
    pub enabled: bool,
    /// Pods that may be unavailable during voluntary disruptions (drains, upgrades).
    #[schemars(range(min = 1))]
    pub max_unavailable: u32,
}

impl DisruptionBudget {
    /// A PDB allowing one pod down at a time, or none.
    pub fn one_at_a_time(enabled: bool) -> Self {
        Self {
            enabled,
            max_unavailable: 1,
        }
    }
}

/// Preset pod anti-affinity across nodes (`kubernetes.io/hostname`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AntiAffinity {
    /// No preset.
    None,
    /// Prefer different nodes.
    Soft,
    /// Require different nodes (pods stay Pending when nodes run out).
    Hard,
}

/// Spreading pods across zones (`topology.kubernetes.io/zone`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySpread {
    /// Add a topology spread constraint.
    pub enabled: bool,
    /// Largest allowed difference in pod count between zones.
    #[schemars(range(min = 1))]
    pub max_skew: u32,
    /// `DoNotSchedule` (hard) or `ScheduleAnyway` (soft).
    pub when_unsatisfiable: WhenUnsatisfiable,
}

impl TopologySpread {
    /// No constraint.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            max_skew: 1,
            when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
        }
    }

    /// A zone spread with max skew 1.
    pub fn zones(when_unsatisfiable: WhenUnsatisfiable) -> Self {
        Self {
            enabled: true,
            max_skew: 1,
            when_unsatisfiable,
        }
    }
}

/// What the scheduler does when a spread constraint cannot be met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WhenUnsatisfiable {
    /// Leave the pod Pending.
    DoNotSchedule,
    /// Schedule it anyway, preferring less skew.
    ScheduleAnyway,
}

/// Where pods may run: presets plus Kubernetes' own fields for anything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Node labels a node must have.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// A full Kubernetes affinity; when set it replaces the `podAntiAffinity` preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// The Kubernetes Service in front of a component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Service type.
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// Port the Service listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

/// A component's ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccount {
    /// Annotations on the ServiceAccount, e.g. for workload identity
    /// (`eks.amazonaws.com/role-arn`, `iam.gke.io/gcp-service-account`,
    /// `azure.workload.identity/client-id`). The chart still mounts no token into the services;
    /// a workload-identity webhook projects its own.
    pub annotations: BTreeMap<String, String>,
}

/// Kubernetes Service type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    /// Cluster-internal virtual IP.
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// A cloud load balancer.
    LoadBalancer,
}

/// One stateless platform service (web, API gateway, integration, development, metadata,
/// ops-monitor): a Deployment with Service, optional HPA and PDB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlatformService {
    /// Deploy this service.
    pub enabled: bool,
    /// Container image.
    pub image: Image,
    /// Replicas when autoscaling is off (initial size when on).
    #[schemars(range(min = 0, max = 500))]
    pub replicas: u32,
    /// Port the container listens on.
    #[schemars(range(min = 1024, max = 65535))]
    pub container_port: u16,
    /// Whether the container serves Prometheus metrics at `/actuator/prometheus` on its port.
    pub metrics: bool,
    /// Container resources.
    pub resources: Resources,
    /// Liveness and readiness probes.
    pub probes: Probes,
    /// Horizontal Pod Autoscaler.
    pub autoscaling: Autoscaling,
    /// PodDisruptionBudget.
    pub pod_disruption_budget: DisruptionBudget,
    /// Anti-affinity preset across nodes.
    pub pod_anti_affinity: AntiAffinity,
    /// Spread across zones.
    pub topology_spread: TopologySpread,
    /// Node selector, tolerations, full affinity.
    pub placement: Placement,
    /// PriorityClass of the pods; empty = none (the cluster's default priority).
    pub priority_class_name: String,
    /// Annotations on the pod template, merged over `global.podAnnotations` (this component's
    /// win), never on selectors.
    pub pod_annotations: PodAnnotations,
    /// Labels on the pod template, merged over `global.podLabels` (this component's win), never
    /// on selectors; the chart's own labels cannot be redefined.
    pub pod_labels: PodLabels,
    /// The pods' ServiceAccount.
    pub service_account: ServiceAccount,
    /// The pod's security context. The defaults meet Pod Security `restricted`; change what your
    /// image needs (e.g. `runAsUser`, `fsGroup`), but `chart-gen validate` and the namespace's
    /// Pod Security level refuse anything weaker (root, a UID below 10000, no seccomp profile).
    pub pod_security_context: PodSecurityContext,
    /// The service container's security context, under the same rule as
    /// `podSecurityContext` (read-only root filesystem, no privilege escalation, all
    /// capabilities dropped).
    pub container_security_context: SecurityContext,
    /// The Service in front of the pods.
    pub service: ServicePort,
    /// Extra environment variables (name → value).
    pub env: BTreeMap<String, String>,
    /// Extra environment variables in Kubernetes' form (valueFrom secrets, field refs).
    pub extra_env: Vec<EnvVar>,
    /// Extra volumes for the pod.
    pub extra_volumes: Vec<Volume>,
    /// Where the extra volumes are mounted in the container.
    pub extra_volume_mounts: Vec<VolumeMount>,
    /// Init containers run before the service (Kubernetes container objects, rendered as
    /// given). They must meet the security policy like the chart's own: a securityContext with
    /// `readOnlyRootFilesystem: true`, `allowPrivilegeEscalation: false`,
    /// `capabilities.drop: [ALL]` (non-root, UID and seccomp come from the pod), resources
    /// requests and limits, a pinned image; `chart-gen validate` refuses them otherwise, naming
    /// the field.
    pub extra_init_containers: Vec<Container>,
    /// Extra containers beside the service (Kubernetes container objects, rendered as given),
    /// under the same policy as `extraInitContainers`, plus liveness and readiness probes.
    pub sidecars: Vec<Container>,
}

impl PlatformService {
    /// A service with the given image repository and port, one replica and the given resources.
    pub fn new(repository: &str, tag: &str, port: u16, resources: Resources) -> Self {
        Self {
            enabled: true,
            image: Image::new("harbor.example.com", repository, tag),
            replicas: 1,
            container_port: port,
            metrics: true,
            resources,
            // The startup probe covers the JVM's start, so liveness counts from the first
            // successful start-up check instead of after a fixed delay.
            probes: Probes {
                startup: StartupProbe::spring_boot("/actuator/health/liveness"),
                liveness: HttpProbe::new("/actuator/health/liveness", 0, 10),
                readiness: HttpProbe::new("/actuator/health/readiness", 20, 5),
            },
            autoscaling: Autoscaling::disabled(),
            pod_disruption_budget: DisruptionBudget::one_at_a_time(false),
            pod_anti_affinity: AntiAffinity::Soft,
            topology_spread: TopologySpread::disabled(),
            placement: Placement::default(),
            priority_class_name: String::new(),
            pod_annotations: PodAnnotations::default(),
            pod_labels: PodLabels::default(),
            service_account: ServiceAccount::default(),
            pod_security_context: hardened_pod_security_context(),
            container_security_context: hardened_container_security_context(),
            service: ServicePort {
                kind: ServiceType::ClusterIP,
                port,
            },
            env: BTreeMap::new(),
            extra_env: Vec::new(),
            extra_volumes: Vec::new(),
            extra_volume_mounts: Vec::new(),
            extra_init_containers: Vec::new(),
            sidecars: Vec::new(),
        }
    }
}

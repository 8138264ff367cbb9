//! Cluster-facing settings around the services: globals, the scheduler, ingress, application
//! configuration and secrets, observability, backup, network policy and the Helm test.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::environment::Environment;
use super::pod::{PodAnnotations, PodLabels};
use super::quantity::Memory;
use super::workload::{
    AntiAffinity, DisruptionBudget, Image, Placement, Resources, ServiceAccount, TopologySpread,
};

/// Pod Security Admission level the release namespace enforces (replaces PodSecurityPolicy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// The hardened profile; every DataJump pod in the release namespace complies.
    Restricted,
    /// Minimal restrictions against known privilege escalations.
    Baseline,
    /// No restrictions.
    Privileged,
}

/// Settings shared by every component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Global {
    /// Registry (Harbor) for every image; when set it wins over each image's own registry, and
    /// each image keeps its upstream path there (`<imageRegistry>/library/mysql`) unless
    /// `imageProject` is set. `kubectl datajump images` lists the Harbor projects those paths
    /// need; `kubectl datajump images mirror` copies every image to where this points.
    pub image_registry: String,
    /// With `imageRegistry`: one Harbor project for every image (`datajump` →
    /// `<imageRegistry>/datajump/mysql`, the repository's last path segment); empty keeps the
    /// upstream paths.
    #[schemars(
        regex(pattern = r"^([a-z0-9]([a-z0-9._-]*[a-z0-9])?)?$"),
        length(max = 255),
        extend("examples" = ["datajump"])
    )]
    pub image_project: String,
    /// Names of image pull Secrets in the release namespace.
    pub image_pull_secrets: Vec<String>,
    /// StorageClass for every volume that does not name its own; empty = cluster default.
    pub storage_class: String,
    /// The environment these values are for.
    pub environment: Environment,
    /// Pod Security Admission level for the release namespace (`kubectl datajump install` labels
    /// the namespace with it).
    pub pod_security: PodSecurityLevel,
    /// Labels added to every object.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations added to every object.
    pub common_annotations: BTreeMap<String, String>,
    /// Annotations on every DataJump pod template (services, scheduler, embedded
    /// infrastructure, backup, restore and hook Jobs, Fluent Bit), e.g.
    /// `linkerd.io/inject: enabled`; a component's own `podAnnotations` win. Not on pods an
    /// operator creates (operator mode). A mesh proxy keeps Job pods running unless it runs as
    /// a native sidecar (Linkerd: `config.alpha.linkerd.io/proxy-enable-native-sidecar: "true"`)
    /// or the Job's component turns injection off (`backup.podAnnotations`).
    pub pod_annotations: PodAnnotations,
    /// Labels on every DataJump pod template (never on selectors); a component's own
    /// `podLabels` win; the chart's own labels cannot be redefined.
    pub pod_labels: PodLabels,
}

/// Leader election among scheduler replicas (coordination.k8s.io Lease).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElection {
    /// Elect a leader; only the holder acts. Required when replicas > 1.
    pub enabled: bool,
    /// Lease duration; a failed leader is replaced within about this long.
    #[schemars(range(min = 5, max = 120))]
    pub lease_duration_seconds: u32,
}

/// The service account task Jobs run as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskServiceAccount {
    /// Create it (with no API permissions).
    pub create: bool,
    /// Name; empty = `<fullname>-task`.
    pub name: String,
}

/// How workflow tasks are executed (each task is a Kubernetes Job).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Executor {
    /// Most task Jobs running at once across all workflows.
    #[schemars(range(min = 1, max = 10000))]
    pub max_running_tasks: u32,
    /// Seconds a task's pod may be unable to start (image pull, missing configuration, no
    /// node fits) before its attempt fails and frees its slot; a task's
    /// `pendingTimeoutSeconds` overrides it.
    #[schemars(range(min = 1, max = 86400))]
    pub task_pending_timeout_seconds: u32,
    /// Seconds a task's finished pod is kept (for `kubectl logs`) once its run recorded the
    /// result; the Job stays as the record. 0 deletes it at once.
    #[schemars(range(max = 2592000))]
    pub finished_pod_retention_seconds: u32,
    /// Resources of tasks that do not set their own.
    pub default_task_resources: Resources,
    /// Service account of task pods.
    pub service_account: TaskServiceAccount,
    /// Named pod presets (DolphinScheduler's worker groups): pod options a workflow's
    /// `podDefaults.preset` or a task's `pod.preset` refers to by name — a node pool's node
    /// selector and tolerations, a shared claim and its mount, a service account. Each is a
    /// Workflow task's `pod` without `preset`: volumes from PersistentVolumeClaims,
    /// ConfigMaps, Secrets and emptyDirs, `volumeMounts`, `nodeSelector`, `tolerations`,
    /// `affinity`, `serviceAccountName`, `automountServiceAccountToken`, `imagePullSecrets`,
    /// `priorityClassName`, `labels`, `annotations`, `securityContext` (`runAsUser`,
    /// `runAsGroup`, `fsGroup`, `supplementalGroups`, `readOnlyRootFilesystem`). Names are
    /// DNS-1123 labels. The scheduler reads them from a ConfigMap and checks them at startup
    /// (a change restarts it); a task naming an unknown preset fails with the known names.
    #[schemars(extend("propertyNames" = {"pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}))]
    pub pod_presets: BTreeMap<String, datajump_api::pod::PodOptions>,
    /// Task pools (DolphinScheduler's task groups, Argo's semaphores): how many tasks naming
    /// each (a task's `pool`) may run at once across all workflows, within `maxRunningTasks`
    /// (e.g. `spark: 4` for a Spark cluster's capacity). Names are DNS-1123 labels; a task
    /// naming an unknown pool fails with the pools known.
    #[schemars(extend("propertyNames" = {"pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}))]
    #[schemars(extend("additionalProperties" = {"type": "integer", "minimum": 1, "maximum": 10000}))]
    pub task_pools: BTreeMap<String, u32>,
}

/// The DataJump workflow scheduler (a Kubernetes controller; see scheduler-image/).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scheduler {
    /// Deploy the scheduler.
    pub enabled: bool,
    /// Container image.
    pub image: Image,
    /// Scheduler replicas ("masters"); only the Lease holder acts.
    #[schemars(range(min = 1, max = 7))]
    pub replicas: u32,
    /// Leader election.
    pub leader_election: LeaderElection,
    /// Container resources.
    pub resources: Resources,
    /// Task execution.
    pub executor: Executor,
    /// Reconciles of each controller (workflows, runs) in flight at once; each may hold an API
    /// server connection, so this bounds the scheduler's connections and memory when many
    /// objects change at once. The task cap is `executor.maxRunningTasks`.
    #[schemars(range(min = 1, max = 256))]
    pub reconcile_concurrency: u16,
    /// Seconds after which every workflow and run is reconciled again though nothing changed
    /// (a safety net; changes trigger reconciles at once).
    #[schemars(range(min = 10, max = 86400))]
    pub resync_seconds: u32,
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
    /// Annotations on the pod template, merged over `global.podAnnotations` (these win).
    pub pod_annotations: PodAnnotations,
    /// Labels on the pod template, merged over `global.podLabels` (these win), never on
    /// selectors.
    pub pod_labels: PodLabels,
    /// The scheduler's ServiceAccount (the one its RBAC binds; task pods use
    /// `executor.serviceAccount`).
    pub service_account: ServiceAccount,
    /// Init containers run before the scheduler (Kubernetes container objects, rendered as
    /// given), under the same security policy as the chart's own containers (see
    /// `web.extraInitContainers`); `chart-gen validate` refuses them otherwise.
    pub extra_init_containers: Vec<Container>,
    /// Extra containers beside the scheduler, under the same policy, plus liveness and
    /// readiness probes.
    pub sidecars: Vec<Container>,
    /// Log filter (RUST_LOG syntax).
    pub log_level: String,
    /// Task logs saved to S3 before their pods are deleted.
    pub log_archive: super::LogArchive,
}

/// TLS for the ingress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressTls {
    /// Serve HTTPS.
    pub enabled: bool,
    /// Secret holding the certificate.
    pub secret_name: String,
    /// cert-manager ClusterIssuer that issues the certificate; empty = manage the Secret yourself.
    pub cluster_issuer: String,
}

/// HTTP(S) entry: `/` → web, `/api` → API gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ingress {
    /// Create the Ingress.
    pub enabled: bool,
    /// IngressClass (`spec.ingressClassName`; the old annotation is not used).
    #[schemars(length(min = 1))]
    pub class_name: String,
    /// Host name.
    #[schemars(length(min = 1))]
    pub host: String,
    /// TLS.
    pub tls: IngressTls,
    /// Largest request body (nginx `proxy-body-size`), e.g. `100m`.
    pub body_size: String,
    /// Extra annotations for the ingress controller.
    pub annotations: BTreeMap<String, String>,
}

/// A Gateway the HTTPRoute attaches to (Gateway API `parentRefs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayRef {
    /// The Gateway's name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The Gateway's namespace; empty = the release namespace. A Gateway in another namespace
    /// must allow routes from this one (`allowedRoutes.namespaces`).
    #[serde(default)]
    pub namespace: String,
    /// The listener to attach to (e.g. `https`); empty = every listener that allows the route.
    #[serde(default)]
    pub section_name: String,
}

/// Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`), the successor of Ingress:
/// `/api` → API gateway, `/` → web, on the Gateways a platform team runs. TLS and the request
/// body limit are the Gateway's (its listeners' `certificateRefs`, the implementation's
/// policies), not the route's. Can be enabled beside `ingress` while moving over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend(
    "if" = {"properties": {"enabled": {"const": true}}},
    "then" = {"properties": {"parentRefs": {"minItems": 1}}}
))]
pub struct HttpRoute {
    /// Create the HTTPRoute (needs the Gateway API CRDs, v1.0 or later, in the cluster).
    pub enabled: bool,
    /// Gateways to attach to; at least one when enabled.
    pub parent_refs: Vec<GatewayRef>,
    /// Host names the route answers; empty = `ingress.host`.
    #[schemars(inner(regex(
        pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    )))]
    pub hostnames: Vec<String>,
    /// Namespace of the Gateway's proxy pods, which the NetworkPolicy lets reach web and the API
    /// gateway; empty = the first parent's namespace (where Istio and NGINX Gateway Fabric run
    /// them; Envoy Gateway runs them in its own, e.g. `envoy-gateway-system`).
    pub data_plane_namespace: String,
    /// Extra annotations on the HTTPRoute.
    pub annotations: BTreeMap<String, String>,
}

/// The application configuration rendered into `application.yml` (ConfigMap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppConfig {
    /// Spring profile of the Java services.
    pub spring_profile: String,
    /// Hikari connection pool size per service instance.
    #[schemars(range(min = 1, max = 500))]
    pub db_max_pool_size: u32,
    /// Root log level of the services.
    pub log_level: String,
}

/// The keys of the credentials Secret, whoever creates it.
pub const CREDENTIAL_KEYS: [&str; 6] = [
    "db-password",
    "db-root-password",
    "redis-password",
    "jwt-secret",
    "minio-access-key",
    "minio-secret-key",
];

/// Plaintext secret values (not in prod, which must use `existingSecret`). The chart creates
/// `<fullname>-secrets` from them; every key must be given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretValues {
    /// MySQL application user's password.
    #[schemars(length(min = 1))]
    pub db_password: String,
    /// MySQL root password (embedded MySQL).
    #[schemars(length(min = 1))]
    pub db_root_password: String,
    /// Redis password.
    #[schemars(length(min = 1))]
    pub redis_password: String,
    /// Key that signs the platform's JWTs.
    #[schemars(length(min = 1))]
    pub jwt_secret: String,
    /// MinIO access key.
    #[schemars(length(min = 1))]
    pub minio_access_key: String,
    /// MinIO secret key.
    #[schemars(length(min = 1))]
    pub minio_secret_key: String,
}

/// Credentials, from a Secret with the keys db-password, db-root-password, redis-password,
/// jwt-secret, minio-access-key and minio-secret-key. The chart never generates credentials
/// while rendering, so every render of the same values is identical (helm template, Argo CD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secrets {
    /// Name of a Secret created outside the chart (required in prod). Empty with no `values`:
    /// `<fullname>-credentials`, which `kubectl datajump install` creates once with random
    /// credentials and keeps across upgrades and uninstalls; with plain Helm, create it first.
    pub existing_secret: String,
    /// Credentials for a Secret the chart creates (`<fullname>-secrets`) when `existingSecret`
    /// is empty; every key is required. Not allowed in prod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<SecretValues>,
}

/// prometheus-operator ServiceMonitor for the services' metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMonitor {
    /// Create ServiceMonitors (needs the monitoring.coreos.com CRDs).
    pub enabled: bool,
    /// Scrape interval.
    #[schemars(regex(pattern = r"^[0-9]+(s|m)$"), extend("examples" = ["30s"]))]
    pub interval: String,
    /// Labels the Prometheus instance selects ServiceMonitors by.
    pub labels: BTreeMap<String, String>,
}

/// Grafana dashboard ConfigMap (picked up by the Grafana sidecar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrafanaDashboard {
    /// Create the dashboard ConfigMap.
    pub enabled: bool,
    /// Labels the Grafana sidecar looks for.
    pub labels: BTreeMap<String, String>,
}

/// PrometheusRule alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrometheusRule {
    /// Create the alert rules.
    pub enabled: bool,
    /// Alert when the task success rate over 15 minutes falls below this percentage.
    #[schemars(range(min = 1, max = 100))]
    pub task_success_rate_percent: u32,
    /// Labels the Prometheus instance selects rules by.
    pub labels: BTreeMap<String, String>,
}

/// Where Fluent Bit ships logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FluentBitOutput {
    /// Elasticsearch host; empty = the platform's Elasticsearch (its own host, port, TLS and
    /// credentials). Another host is reached over plain HTTP without credentials.
    pub host: String,
    /// Elasticsearch port, with `host`.
    pub port: u16,
    /// Index prefix.
    #[schemars(
        length(min = 1),
        regex(pattern = r"^[a-z0-9][a-z0-9._-]*$"),
        extend("examples" = ["datajump"])
    )]
    pub logstash_prefix: String,
    /// Secret in Fluent Bit's namespace holding what it needs to reach the platform's secured
    /// Elasticsearch (operator or external mode): `es.conf` (Fluent Bit `@SET` lines for
    /// `ES_USER` and `ES_PASSWORD`) and `ca.crt`. Empty = `<fluent-bit name>-es`, which
    /// `kubectl datajump install` and `upgrade` keep in sync with the release namespace.
    pub secret_name: String,
}

/// Fluent Bit DaemonSet collecting container logs from every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FluentBit {
    /// Deploy Fluent Bit.
    pub enabled: bool,
    /// Namespace it runs in. It reads host log files as root, which the release namespace's
    /// `restricted` Pod Security level forbids, so it gets its own `privileged` namespace.
    #[schemars(length(min = 1))]
    pub namespace: String,
    /// Container image.
    pub image: Image,
    /// Container resources.
    pub resources: Resources,
    /// Output.
    pub output: FluentBitOutput,
    /// Annotations on the DaemonSet's pod template, merged over `global.podAnnotations`.
    pub pod_annotations: PodAnnotations,
    /// Labels on the DaemonSet's pod template, merged over `global.podLabels`.
    pub pod_labels: PodLabels,
}

/// Metrics, dashboards, alerts and logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Observability {
    /// ServiceMonitor.
    pub service_monitor: ServiceMonitor,
    /// Grafana dashboard.
    pub grafana_dashboard: GrafanaDashboard,
    /// Alert rules.
    pub prometheus_rule: PrometheusRule,
    /// Log collection.
    pub fluent_bit: FluentBit,
}

/// Upload of each backup to an S3-compatible bucket (the platform's MinIO or another).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupUpload {
    /// Upload backups.
    pub enabled: bool,
    /// Endpoint URL; empty = the platform's MinIO.
    pub endpoint: String,
    /// Bucket.
    pub bucket: String,
    /// Region for request signing.
    pub region: String,
    /// Secret with keys access-key and secret-key; empty = the platform Secret's MinIO keys.
    pub existing_secret: String,
}

/// Scheduled MySQL backups (CronJob) and the restore Job template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backup {
    /// Schedule backups.
    pub enabled: bool,
    /// Cron schedule (5 fields).
    #[schemars(regex(pattern = r"^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$"))]
    #[schemars(extend("examples" = ["0 2 * * *"]))]
    pub schedule: String,
    /// IANA time zone of the schedule.
    pub time_zone: String,
    /// Backups kept on the volume (older ones are pruned).
    #[schemars(range(min = 1, max = 365))]
    pub keep: u32,
    /// Container image with the MySQL client tools (mysqldump/mariadb-dump, gzip, sha256sum).
    pub image: Image,
    /// Container resources.
    pub resources: Resources,
    /// Backup volume size.
    pub storage: Memory,
    /// Backup volume StorageClass; empty = `global.storageClass`.
    pub storage_class: String,
    /// Optional upload.
    pub upload: BackupUpload,
    /// Annotations on the backup and restore Job pods, merged over `global.podAnnotations`.
    pub pod_annotations: PodAnnotations,
    /// Labels on the backup and restore Job pods, merged over `global.podLabels`.
    pub pod_labels: PodLabels,
}

/// NetworkPolicies: default deny plus the allows the platform needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicy {
    /// Create the policies.
    pub enabled: bool,
    /// Namespace of the ingress controller (allowed to reach web and the gateway).
    pub ingress_controller_namespace: String,
    /// Namespace of Prometheus (allowed to scrape metrics).
    pub monitoring_namespace: String,
    /// Namespaces of the infrastructure operators (they connect to the pods they manage).
    pub operator_namespaces: Vec<String>,
    /// CIDRs of the Kubernetes API server (the scheduler talks to it).
    pub api_server_cidrs: Vec<String>,
    /// CIDRs of `external` infrastructure (reached on the services' ports).
    pub external_cidrs: Vec<String>,
}

/// The `helm test` hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelmTest {
    /// Render the test pod.
    pub enabled: bool,
    /// Image with curl.
    pub image: Image,
}

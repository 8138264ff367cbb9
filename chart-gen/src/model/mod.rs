//! The typed model of the platform: the chart's values. Doc comments become the values schema's
//! descriptions and the README's values table.

mod environment;
mod infra;
mod log_archive;
mod log_shipping;
pub mod mirror;
pub mod names;
mod platform;
mod pod;
pub mod quantity;
mod workload;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use environment::{Environment, UnknownEnvironment};
pub use infra::{
    BucketSetup, EMBEDDED_SERVERS, Elasticsearch, ElasticsearchExternal, ElasticsearchOperator,
    Embedded, EmbeddedServer, External, Kafka, KafkaOperator, Minio, MinioOperator, Mode, Mysql,
    MysqlOperator, NodeSet, Redis, RedisOperator, ServerArgs, Storage,
};
pub use log_archive::{LogArchive, LogArchiveCa, LogArchiveCredentials};
pub use log_shipping::{LOG_SHIPPING, LogShipping, UnsafeCredential, conf_file};
pub use platform::{
    AppConfig, Backup, BackupUpload, CREDENTIAL_KEYS, Executor, FluentBit, FluentBitOutput,
    GatewayRef, Global, GrafanaDashboard, HelmTest, HttpRoute, Ingress, IngressTls, LeaderElection,
    NetworkPolicy, Observability, PodSecurityLevel, PrometheusRule, Scheduler, SecretValues,
    Secrets, ServiceMonitor, TaskServiceAccount,
};
pub use pod::{CHART_POD_ANNOTATIONS, CHART_POD_LABELS, PodAnnotations, PodLabels};
pub use quantity::{Cpu, Memory, QuantityError};
pub use workload::{
    AntiAffinity, Autoscaling, DisruptionBudget, HttpProbe, Image, Overcommit, Placement,
    PlatformService, Probes, PullPolicy, ResourceAmounts, Resources, ServiceAccount, ServicePort,
    ServiceType, StartupProbe, TopologySpread, WhenUnsatisfiable,
    hardened_container_security_context, hardened_pod_security_context,
};

/// The values of the DataJump chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "DataJump chart values")]
pub struct Values {
    /// Replaces the chart name in `app.kubernetes.io/name` and in the fullname
    /// (`<release>-<nameOverride>`); empty = `datajump`.
    #[schemars(
        length(max = 50),
        regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"),
        extend("examples" = ["dj"])
    )]
    pub name_override: String,
    /// Replaces the fullname, the prefix of every object name (`<fullnameOverride>-web`, …);
    /// empty = the release name when it contains the chart name, else `<release>-<name>`. At
    /// most 50 characters, so component names stay within 63. `kubectl datajump` finds the
    /// objects of an installed release by its labels, whatever this is.
    #[schemars(
        length(max = 50),
        regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"),
        extend("examples" = ["datajump-prod"])
    )]
    pub fullname_override: String,
    /// Settings shared by every component.
    pub global: Global,
    /// Web front end (served at `/`).
    pub web: PlatformService,
    /// API gateway (served at `/api`).
    pub api_gateway: PlatformService,
    /// Data integration service.
    pub integration: PlatformService,
    /// Data development service.
    pub development: PlatformService,
    /// Metadata service.
    pub metadata: PlatformService,
    /// Operations monitoring service.
    pub ops_monitor: PlatformService,
    /// Workflow scheduler.
    pub scheduler: Scheduler,
    /// MySQL.
    pub mysql: Mysql,
    /// Redis.
    pub redis: Redis,
    /// Kafka.
    pub kafka: Kafka,
    /// Elasticsearch.
    pub elasticsearch: Elasticsearch,
    /// MinIO.
    pub minio: Minio,
    /// Ingress.
    pub ingress: Ingress,
    /// Gateway API HTTPRoute, beside or instead of the Ingress.
    pub http_route: HttpRoute,
    /// Application configuration (application.yml).
    pub config: AppConfig,
    /// Credentials.
    pub secrets: Secrets,
    /// Metrics, dashboards, alerts, logs.
    pub observability: Observability,
    /// MySQL backups.
    pub backup: Backup,
    /// NetworkPolicies.
    pub network_policy: NetworkPolicy,
    /// `helm test` hook.
    pub tests: HelmTest,
}

/// A platform service's key in the values and its component name in labels and object names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceKey {
    /// Key under the values root, e.g. `apiGateway`.
    pub values_key: &'static str,
    /// Component name, e.g. `api-gateway`.
    pub component: &'static str,
}

/// The six stateless platform services, in the order they are documented.
pub const PLATFORM_SERVICES: [ServiceKey; 6] = [
    ServiceKey {
        values_key: "web",
        component: "web",
    },
    ServiceKey {
        values_key: "apiGateway",
        component: "api-gateway",
    },
    ServiceKey {
        values_key: "integration",
        component: "integration",
    },
    ServiceKey {
        values_key: "development",
        component: "development",
    },
    ServiceKey {
        values_key: "metadata",
        component: "metadata",
    },
    ServiceKey {
        values_key: "opsMonitor",
        component: "ops-monitor",
    },
];

impl Values {
    /// Every container image the chart can deploy, whichever modes are chosen.
    pub fn images_mut(&mut self) -> Vec<&mut Image> {
        vec![
            &mut self.web.image,
            &mut self.api_gateway.image,
            &mut self.integration.image,
            &mut self.development.image,
            &mut self.metadata.image,
            &mut self.ops_monitor.image,
            &mut self.scheduler.image,
            &mut self.mysql.embedded.image,
            &mut self.redis.embedded.image,
            &mut self.redis.operator.image,
            &mut self.kafka.embedded.image,
            &mut self.kafka.operator.image,
            &mut self.elasticsearch.embedded.image,
            &mut self.elasticsearch.operator.image,
            &mut self.minio.embedded.image,
            &mut self.minio.bucket_setup.image,
            &mut self.minio.operator.image,
            &mut self.observability.fluent_bit.image,
            &mut self.backup.image,
            &mut self.tests.image,
        ]
    }

    /// Mutable access to every platform service.
    pub fn platform_services_mut(&mut self) -> [&mut PlatformService; 6] {
        [
            &mut self.web,
            &mut self.api_gateway,
            &mut self.integration,
            &mut self.development,
            &mut self.metadata,
            &mut self.ops_monitor,
        ]
    }
}

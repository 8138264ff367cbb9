//! The four environment profiles, as code. `base()` is the chart's `values.yaml`; each profile
//! starts from it and changes what its environment needs. The generator writes the difference as
//! `values-<env>.yaml`, so Helm's merge of the two gives exactly the profile.

use std::collections::BTreeMap;

use crate::model::*;

const HARBOR: &str = "harbor.example.com";
/// The MySQL Operator release the chart's InnoDBCluster is written for (its CRD is checked
/// against that release's); its sidecar image is mirrored with this tag.
const MYSQL_OPERATOR_VERSION: &str = "9.1.0-2.2.2";
/// The platform's application version, used for the services' image tags.
pub const APP_VERSION: &str = "1.0.0";
/// The scheduler this repository builds; its image tag follows the workspace version.
pub const SCHEDULER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The values for `env`.
/// The global cap of running task Jobs on the small clusters of dev and test (the base profile):
/// fewer than the scheduler's default, which staging and prod keep.
const SMALL_CLUSTER_MAX_RUNNING_TASKS: u32 = 20;

pub fn profile(env: Environment) -> Values {
    match env {
        Environment::Dev => dev(),
        Environment::Test => test(),
        Environment::Staging => staging(),
        Environment::Prod => prod(),
    }
}

fn cpu(s: &str) -> Cpu {
    Cpu::parse(s).expect("profile CPU literal")
}

fn mem(s: &str) -> Memory {
    Memory::parse(s).expect("profile memory literal")
}

fn res(req_cpu: &str, req_mem: &str, lim_cpu: &str, lim_mem: &str) -> Resources {
    Resources::new((cpu(req_cpu), mem(req_mem)), (cpu(lim_cpu), mem(lim_mem)))
}

fn storage(size: &str, class: &str) -> Storage {
    Storage {
        size: mem(size),
        storage_class: class.into(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn embedded(image: Image, resources: Resources, storage: Memory) -> Embedded {
    Embedded {
        image,
        resources,
        storage,
        pod_annotations: PodAnnotations::default(),
        pod_labels: PodLabels::default(),
    }
}

/// Where an `external` service is reached; the profiles hold placeholders a user replaces.
fn external(host: &str, port: u16) -> External {
    External {
        host: host.into(),
        port,
    }
}

fn service(name: &str, port: u16) -> PlatformService {
    PlatformService::new(
        &format!("datajump/{name}"),
        APP_VERSION,
        port,
        res("250m", "512Mi", "1", "1Gi"),
    )
}

/// The chart's defaults (`values.yaml`): a small single-replica platform on embedded
/// infrastructure, installable on a bare cluster.
pub fn base() -> Values {
    let mut web = service("web", 8080);
    web.probes.startup.path = "/healthz".into();
    web.probes.liveness.path = "/healthz".into();
    web.probes.readiness.path = "/healthz".into();
    web.metrics = false;
    web.service.port = 80;
    Values {
        name_override: String::new(),
        fullname_override: String::new(),
        global: Global {
            image_registry: String::new(),
            image_project: String::new(),
            image_pull_secrets: Vec::new(),
            storage_class: String::new(),
            environment: Environment::Dev,
            pod_security: PodSecurityLevel::Restricted,
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            pod_annotations: PodAnnotations::default(),
            pod_labels: PodLabels::default(),
        },
        web,
        api_gateway: service("api-gateway", 8080),
        integration: service("integration", 8080),
        development: service("development", 8080),
        metadata: service("metadata", 8080),
        ops_monitor: service("ops-monitor", 8080),
        scheduler: Scheduler {
            enabled: true,
            image: Image::new(HARBOR, "datajump/scheduler", SCHEDULER_VERSION),
            replicas: 1,
            leader_election: LeaderElection {
                enabled: true,
                lease_duration_seconds: 15,
            },
            resources: res("50m", "64Mi", "500m", "128Mi"),
            executor: Executor {
                max_running_tasks: SMALL_CLUSTER_MAX_RUNNING_TASKS,
                task_pending_timeout_seconds: 600,
                finished_pod_retention_seconds: 3600,
                default_task_resources: res("250m", "256Mi", "1", "512Mi"),
                service_account: TaskServiceAccount {
                    create: true,
                    name: String::new(),
                },
                pod_presets: BTreeMap::new(),
                task_pools: BTreeMap::new(),
            },
            reconcile_concurrency: 16,
            resync_seconds: 300,
            pod_disruption_budget: DisruptionBudget::one_at_a_time(false),
            pod_anti_affinity: AntiAffinity::Soft,
            topology_spread: TopologySpread::disabled(),
            placement: Placement::default(),
            priority_class_name: String::new(),
            pod_annotations: PodAnnotations::default(),
            pod_labels: PodLabels::default(),
            service_account: ServiceAccount::default(),
            extra_init_containers: Vec::new(),
            sidecars: Vec::new(),
            log_level: "info".into(),
            log_archive: LogArchive {
                enabled: false,
                endpoint: String::new(),
                bucket: "datajump-logs".into(),
                region: "us-east-1".into(),
                key_prefix: String::new(),
                credentials: LogArchiveCredentials {
                    secret_name: String::new(),
                    access_key_key: "access-key".into(),
                    secret_key_key: "secret-key".into(),
                },
                ca: LogArchiveCa {
                    config_map_name: String::new(),
                    key: "ca.crt".into(),
                },
                give_up_after_seconds: 86400,
                endpoint_cidrs: Vec::new(),
            },
        },
        mysql: Mysql {
            mode: Mode::Embedded,
            database: "datajump".into(),
            username: "datajump".into(),
            embedded: embedded(
                Image::new("docker.io", "library/mysql", "8.4.3"),
                res("250m", "512Mi", "1", "1Gi"),
                mem("8Gi"),
            ),
            operator: MysqlOperator {
                instances: 3,
                router_instances: 2,
                version: "8.4.3".into(),
                image_repository: "container-registry.oracle.com/mysql".into(),
                operator_version: MYSQL_OPERATOR_VERSION.into(),
                root_secret: "datajump-mysql-root".into(),
                storage: storage("20Gi", ""),
                resources: res("500m", "2Gi", "2", "2Gi"),
            },
            external: external("mysql.example.com", 3306),
        },
        redis: Redis {
            mode: Mode::Embedded,
            embedded: embedded(
                Image::new("docker.io", "library/redis", "7.4.1-alpine"),
                res("100m", "128Mi", "500m", "256Mi"),
                mem("2Gi"),
            ),
            operator: RedisOperator {
                cluster_size: 3,
                image: Image::new("quay.io", "opstree/redis", "v7.0.15"),
                resources: res("500m", "1Gi", "1", "1Gi"),
                storage: storage("20Gi", ""),
            },
            external: external("redis.example.com", 6379),
        },
        kafka: Kafka {
            mode: Mode::Embedded,
            embedded: embedded(
                Image::new("docker.io", "apache/kafka", "4.1.1"),
                res("250m", "768Mi", "1", "1Gi"),
                mem("8Gi"),
            ),
            operator: KafkaOperator {
                version: "4.2.0".into(),
                image: Image::new("quay.io", "strimzi/kafka", "1.2.0-kafka-4.2.0"),
                replicas: 3,
                storage: storage("100Gi", ""),
                resources: res("1", "4Gi", "2", "4Gi"),
            },
            external: external("kafka.example.com", 9092),
        },
        elasticsearch: Elasticsearch {
            mode: Mode::Embedded,
            embedded: embedded(
                Image::new("docker.elastic.co", "elasticsearch/elasticsearch", "8.15.3"),
                res("250m", "1Gi", "1", "2Gi"),
                mem("8Gi"),
            ),
            operator: ElasticsearchOperator {
                version: "8.15.3".into(),
                image: Image::new("docker.elastic.co", "elasticsearch/elasticsearch", "8.15.3"),
                master: NodeSet {
                    count: 3,
                    storage: storage("50Gi", ""),
                    resources: res("500m", "2Gi", "1", "2Gi"),
                },
                data: NodeSet {
                    count: 3,
                    storage: storage("200Gi", ""),
                    resources: res("1", "8Gi", "4", "8Gi"),
                },
                delete_data_on_removal: false,
            },
            external: ElasticsearchExternal {
                host: "elasticsearch.example.com".into(),
                port: 9200,
                credentials_secret: String::new(),
                ca_in_secret: false,
            },
        },
        minio: Minio {
            mode: Mode::Embedded,
            bucket: "datajump".into(),
            embedded: embedded(
                Image::new("docker.io", "rustfs/rustfs", "1.0.0-alpha.85"),
                res("100m", "256Mi", "500m", "512Mi"),
                mem("10Gi"),
            ),
            bucket_setup: BucketSetup {
                image: Image::new("docker.io", "curlimages/curl", "8.11.1"),
            },
            operator: MinioOperator {
                image: Image::new("quay.io", "minio/minio", "RELEASE.2025-04-22T22-12-26Z"),
                servers: 4,
                volumes_per_server: 4,
                storage: storage("100Gi", ""),
                config_secret: "datajump-minio-config".into(),
                resources: res("500m", "2Gi", "2", "2Gi"),
            },
            external: external("minio.example.com", 9000),
        },
        ingress: Ingress {
            enabled: true,
            class_name: "nginx".into(),
            host: "datajump.example.com".into(),
            tls: IngressTls {
                enabled: false,
                secret_name: "datajump-tls".into(),
                cluster_issuer: String::new(),
            },
            body_size: "100m".into(),
            annotations: BTreeMap::new(),
        },
        http_route: HttpRoute {
            enabled: false,
            parent_refs: Vec::new(),
            hostnames: Vec::new(),
            data_plane_namespace: String::new(),
            annotations: BTreeMap::new(),
        },
        config: AppConfig {
            spring_profile: "dev".into(),
            db_max_pool_size: 10,
            log_level: "INFO".into(),
        },
        secrets: Secrets {
            existing_secret: String::new(),
            values: None,
        },
        observability: Observability {
            service_monitor: ServiceMonitor {
                enabled: false,
                interval: "30s".into(),
                labels: BTreeMap::new(),
            },
            grafana_dashboard: GrafanaDashboard {
                enabled: true,
                labels: labels(&[("grafana_dashboard", "1")]),
            },
            prometheus_rule: PrometheusRule {
                enabled: false,
                task_success_rate_percent: 95,
                labels: BTreeMap::new(),
            },
            fluent_bit: FluentBit {
                enabled: false,
                namespace: "datajump-logging".into(),
                image: Image::new("cr.fluentbit.io", "fluent/fluent-bit", "3.2.10"),
                resources: res("50m", "64Mi", "500m", "128Mi"),
                output: FluentBitOutput {
                    host: String::new(),
                    port: 9200,
                    logstash_prefix: "datajump-logs".into(),
                    secret_name: String::new(),
                },
                pod_annotations: PodAnnotations::default(),
                pod_labels: PodLabels::default(),
            },
        },
        backup: Backup {
            enabled: true,
            schedule: "0 2 * * *".into(),
            time_zone: "Etc/UTC".into(),
            keep: 3,
            // The servers are MySQL 8.4 (embedded and InnoDBCluster): dump with the same client.
            image: Image::new("docker.io", "library/mysql", "8.4.3"),
            resources: res("100m", "256Mi", "1", "512Mi"),
            storage: mem("10Gi"),
            storage_class: String::new(),
            upload: BackupUpload {
                enabled: false,
                endpoint: String::new(),
                bucket: "datajump-backups".into(),
                region: "us-east-1".into(),
                existing_secret: String::new(),
            },
            pod_annotations: PodAnnotations::default(),
            pod_labels: PodLabels::default(),
        },
        network_policy: NetworkPolicy {
            enabled: true,
            ingress_controller_namespace: "ingress-nginx".into(),
            monitoring_namespace: "monitoring".into(),
            operator_namespaces: [
                "mysql-operator",
                "redis-operator",
                "strimzi",
                "elastic-system",
                "minio-operator",
            ]
            .map(String::from)
            .to_vec(),
            api_server_cidrs: vec!["0.0.0.0/0".into()],
            external_cidrs: Vec::new(),
        },
        tests: HelmTest {
            enabled: true,
            image: Image::new("docker.io", "curlimages/curl", "8.11.1"),
        },
    }
}

/// Calls `f` on every container's resources in the profile (for applying an overcommit ratio):
/// the platform services', then the scheduler's and the embedded infrastructure's.
fn for_each_resources(v: &mut Values, mut f: impl FnMut(&mut Resources)) {
    for service in v.platform_services_mut() {
        f(&mut service.resources);
    }
    for r in [
        &mut v.scheduler.resources,
        &mut v.scheduler.executor.default_task_resources,
        &mut v.mysql.embedded.resources,
        &mut v.redis.embedded.resources,
        &mut v.kafka.embedded.resources,
        &mut v.elasticsearch.embedded.resources,
        &mut v.minio.embedded.resources,
        &mut v.observability.fluent_bit.resources,
        &mut v.backup.resources,
    ] {
        f(r);
    }
}

fn overcommit(v: &mut Values, ratio: Overcommit) {
    for_each_resources(v, |r| *r = r.overcommitted(ratio));
}

/// Memory requests = limits everywhere: staging and prod never overcommit memory.
fn no_memory_overcommit(v: &mut Values) {
    for_each_resources(v, |r| r.requests.memory = r.limits.memory);
    for r in [
        &mut v.mysql.operator.resources,
        &mut v.redis.operator.resources,
        &mut v.kafka.operator.resources,
        &mut v.elasticsearch.operator.master.resources,
        &mut v.elasticsearch.operator.data.resources,
        &mut v.minio.operator.resources,
    ] {
        r.requests.memory = r.limits.memory;
    }
}

/// dev: minimal, embedded infrastructure, one replica, no autoscaling, overcommitted.
pub fn dev() -> Values {
    let mut v = base();
    v.global.environment = Environment::Dev;
    v.ingress.host = "dev.datajump.example.com".into();
    overcommit(
        &mut v,
        Overcommit {
            cpu: 4.0,
            memory: 2.0,
        },
    );
    v
}

/// test: medium sizing, operators for the infrastructure, two replicas, modest autoscaling.
pub fn test() -> Values {
    let mut v = base();
    v.global.environment = Environment::Test;
    v.config.spring_profile = "test".into();
    v.config.db_max_pool_size = 20;
    v.ingress.host = "test.datajump.example.com".into();
    for s in v.platform_services_mut() {
        s.replicas = 2;
        s.resources = res("500m", "1Gi", "1", "2Gi");
        s.autoscaling = Autoscaling::between(2, 5);
        s.pod_disruption_budget = DisruptionBudget::one_at_a_time(true);
    }
    v.mysql.mode = Mode::Operator;
    v.mysql.operator.instances = 1;
    v.mysql.operator.router_instances = 1;
    v.redis.mode = Mode::Operator;
    v.kafka.mode = Mode::Operator;
    v.kafka.operator.replicas = 1;
    v.kafka.operator.storage = storage("20Gi", "");
    v.elasticsearch.mode = Mode::Operator;
    v.elasticsearch.operator.master.count = 1;
    v.elasticsearch.operator.data.count = 1;
    v.elasticsearch.operator.data.storage = storage("50Gi", "");
    v.minio.mode = Mode::Operator;
    v.minio.operator.servers = 1;
    v.minio.operator.storage = storage("20Gi", "");
    v.observability.service_monitor.enabled = true;
    v.observability.prometheus_rule.enabled = true;
    v.observability.fluent_bit.enabled = true;
    v.backup.keep = 5;
    overcommit(
        &mut v,
        Overcommit {
            cpu: 2.0,
            memory: 1.5,
        },
    );
    v
}

/// Settings staging and prod share: operators everywhere, Harbor, TLS, PDBs, spread, no memory
/// overcommit, credentials only from an existing Secret.
fn production_grade(v: &mut Values, services: (u32, u32), storage_class: &str) {
    v.global.image_registry = HARBOR.into();
    v.global.storage_class = storage_class.into();
    v.global.image_pull_secrets = vec!["harbor-pull".into()];
    // Tags are mutable in a registry: staging and prod always ask Harbor what a tag is now
    // (seed 002), unless a site pins digests.
    for image in v.images_mut() {
        image.pull_policy = PullPolicy::Always;
    }
    v.secrets = Secrets {
        existing_secret: "datajump-secrets".into(),
        values: None,
    };
    for s in v.platform_services_mut() {
        s.replicas = services.0;
        s.resources = res("1", "2Gi", "2", "2Gi");
        s.autoscaling = Autoscaling::between(services.0, services.1);
        s.pod_disruption_budget = DisruptionBudget::one_at_a_time(true);
        s.topology_spread = TopologySpread::zones(WhenUnsatisfiable::ScheduleAnyway);
    }
    v.api_gateway.replicas = 3;
    v.api_gateway.autoscaling = Autoscaling::disabled();
    v.scheduler.replicas = 3;
    v.scheduler.pod_disruption_budget = DisruptionBudget::one_at_a_time(true);
    v.scheduler.pod_anti_affinity = AntiAffinity::Hard;
    v.scheduler.topology_spread = TopologySpread::zones(WhenUnsatisfiable::DoNotSchedule);
    // Staging and prod run with the scheduler's own default cap.
    v.scheduler.executor.max_running_tasks = datajump_api::DEFAULT_MAX_RUNNING_TASKS.into();
    // Headroom over the ~64 MiB measured managing 1,000 workflows (scheduler-image README).
    v.scheduler.resources = res("100m", "256Mi", "1", "256Mi");
    v.mysql.mode = Mode::Operator;
    v.redis.mode = Mode::Operator;
    v.kafka.mode = Mode::Operator;
    v.elasticsearch.mode = Mode::Operator;
    v.minio.mode = Mode::Operator;
    v.ingress.tls.enabled = true;
    v.observability.service_monitor.enabled = true;
    v.observability.prometheus_rule.enabled = true;
    v.observability.fluent_bit.enabled = true;
    v.backup.keep = 14;
    v.backup.upload.enabled = true;
    v.config.db_max_pool_size = 50;
    no_memory_overcommit(v);
}

/// staging: close to prod on a smaller footprint.
pub fn staging() -> Values {
    let mut v = base();
    v.global.environment = Environment::Staging;
    v.config.spring_profile = "staging".into();
    v.ingress.host = "staging.datajump.example.com".into();
    v.ingress.tls.cluster_issuer = "letsencrypt-staging".into();
    production_grade(&mut v, (3, 20), "standard-ssd");
    v.mysql.operator.storage = storage("50Gi", "");
    v.elasticsearch.operator.data.count = 3;
    v
}

/// prod: the reference architecture's full configuration.
pub fn prod() -> Values {
    let mut v = base();
    v.global.environment = Environment::Prod;
    v.config.spring_profile = "prod".into();
    v.ingress.host = "datajump.example.com".into();
    v.ingress.tls.cluster_issuer = "letsencrypt-prod".into();
    production_grade(&mut v, (5, 50), "fast-ssd");
    v.mysql.operator.instances = 3;
    v.mysql.operator.router_instances = 2;
    v.mysql.operator.storage = storage("100Gi", "fast-ssd");
    v.redis.operator.cluster_size = 3;
    v.kafka.operator.replicas = 3;
    v.kafka.operator.storage = storage("100Gi", "fast-ssd");
    v.elasticsearch.operator.master.count = 3;
    v.elasticsearch.operator.master.storage = storage("50Gi", "fast-ssd");
    v.elasticsearch.operator.data.count = 5;
    v.elasticsearch.operator.data.storage = storage("500Gi", "fast-ssd");
    v.observability.service_monitor.interval = "15s".into();
    v.backup.schedule = "0 2 * * *".into();
    v.backup.keep = 30;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_and_test_overcommit_staging_and_prod_never_overcommit_memory() {
        let dev = dev();
        assert!(dev.web.resources.requests.memory < dev.web.resources.limits.memory);
        assert!(dev.web.resources.requests.cpu < dev.web.resources.limits.cpu);
        for env in [Environment::Staging, Environment::Prod] {
            for_each_resources(&mut profile(env), |r| {
                assert_eq!(r.requests.memory, r.limits.memory, "{env}");
            });
        }
    }

    #[test]
    fn prod_matches_the_reference_architecture() {
        let p = prod();
        assert_eq!(p.scheduler.replicas, 3);
        assert_eq!(p.scheduler.pod_anti_affinity, AntiAffinity::Hard);
        assert!(p.scheduler.topology_spread.enabled);
        assert_eq!(p.api_gateway.replicas, 3);
        assert_eq!(
            (
                p.web.autoscaling.min_replicas,
                p.web.autoscaling.max_replicas
            ),
            (5, 50)
        );
        assert_eq!(p.web.autoscaling.target_cpu_utilization_percentage, 70);
        assert_eq!(p.web.autoscaling.target_memory_utilization_percentage, 80);
        assert_eq!(p.mysql.operator.instances, 3);
        assert_eq!(p.mysql.operator.router_instances, 2);
        assert_eq!(p.mysql.operator.storage.size, Memory::gi(100));
        assert_eq!(p.elasticsearch.operator.data.count, 5);
        assert_eq!(p.backup.schedule, "0 2 * * *");
        assert_eq!(p.observability.service_monitor.interval, "15s");
        assert!(p.secrets.values.is_none());
    }
}

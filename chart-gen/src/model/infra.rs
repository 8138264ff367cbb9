//! Infrastructure the platform runs on: MySQL, Redis, Kafka, Elasticsearch, MinIO. Each is
//! `embedded` (a single-replica StatefulSet, so dev installs on a bare cluster), `operator` (a
//! custom resource for the operator named below) or `external` (connection settings only).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::pod::{PodAnnotations, PodLabels};
use super::quantity::Memory;
use super::workload::{Image, Resources};

/// How an infrastructure service is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A single-replica StatefulSet in the release namespace; needs no operator.
    Embedded,
    /// A custom resource reconciled by the service's operator (which must be installed).
    Operator,
    /// Runs outside the cluster; only connection settings are rendered.
    External,
}

/// The single-replica StatefulSet used in `embedded` mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Embedded {
    /// Container image.
    pub image: Image,
    /// Container resources.
    pub resources: Resources,
    /// Size of the data volume.
    pub storage: Memory,
    /// Annotations on the StatefulSet's pod template, merged over `global.podAnnotations`.
    pub pod_annotations: PodAnnotations,
    /// Labels on the StatefulSet's pod template, merged over `global.podLabels`.
    pub pod_labels: PodLabels,
}

/// What an infrastructure component's `embedded` server needs beyond its values: chart-gen
/// stamps the StatefulSet and Service from `chart-gen/templates/embedded/` once per entry of
/// [`EMBEDDED_SERVERS`], into the component's own template folder, where the component also
/// defines its container environment (`datajump.<component>.embeddedEnv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EmbeddedServer {
    /// Key under the values root, e.g. `elasticsearch`.
    pub values_key: &'static str,
    /// Component name in labels, object and port names.
    pub component: &'static str,
    /// The port the server listens on (the Service's too).
    pub port: u16,
    /// Where the data volume is mounted.
    pub data_path: &'static str,
    /// Other paths the server writes (each an emptyDir: the root filesystem is read-only).
    pub writable: &'static [&'static str],
    /// A directory of the image that its entrypoint writes into at start: an init container
    /// seeds an emptyDir with the image's files and the server gets that copy.
    pub config_dir: Option<&'static str>,
    /// An HTTP readiness check instead of a TCP one.
    pub health_path: Option<&'static str>,
    /// Keys of the platform Secret mounted read-only as files under `/credentials` (credentials
    /// are files, never environment variables).
    pub credentials: &'static [&'static str],
    /// The container's arguments.
    pub args: ServerArgs,
}

/// Where an embedded server's container arguments come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "list", rename_all = "lowercase")]
pub enum ServerArgs {
    /// None: the image's own command.
    Image,
    /// These arguments.
    Fixed(&'static [&'static str]),
    /// The component's named template `datajump.<component>.embeddedArgs` (a YAML list that
    /// needs the values, e.g. a start script).
    Template,
}

/// Every infrastructure component that has an `embedded` mode.
pub const EMBEDDED_SERVERS: [EmbeddedServer; 5] = [
    EmbeddedServer {
        values_key: "mysql",
        component: "mysql",
        port: 3306,
        // The data directory is a subdirectory of the volume (see `args`): first initialisation
        // refuses a non-empty directory, and a fresh ext4 volume holds `lost+found`.
        // /var/lib/mysql-files is the server's secure-file-priv directory, checked at start.
        data_path: "/var/lib/mysql",
        writable: &["/var/run/mysqld", "/var/lib/mysql-files", "/tmp"],
        config_dir: None,
        health_path: None,
        credentials: &["db-root-password", "db-password"],
        args: ServerArgs::Fixed(&["mysqld", "--datadir=/var/lib/mysql/data"]),
    },
    EmbeddedServer {
        values_key: "redis",
        component: "redis",
        port: 6379,
        data_path: "/data",
        writable: &["/tmp"],
        config_dir: None,
        health_path: None,
        credentials: &["redis-password"],
        args: ServerArgs::Template,
    },
    EmbeddedServer {
        values_key: "kafka",
        component: "kafka",
        port: 9092,
        data_path: "/var/lib/kafka/data",
        writable: &["/tmp", "/opt/kafka/logs"],
        config_dir: Some("/opt/kafka/config"),
        health_path: None,
        credentials: &[],
        args: ServerArgs::Image,
    },
    EmbeddedServer {
        values_key: "elasticsearch",
        component: "elasticsearch",
        port: 9200,
        data_path: "/usr/share/elasticsearch/data",
        writable: &["/tmp", "/usr/share/elasticsearch/logs"],
        config_dir: Some("/usr/share/elasticsearch/config"),
        health_path: Some("/_cluster/health?local=true&wait_for_status=yellow&timeout=1s"),
        credentials: &[],
        args: ServerArgs::Image,
    },
    EmbeddedServer {
        values_key: "minio",
        component: "minio",
        port: 9000,
        data_path: "/data",
        writable: &["/tmp", "/logs"],
        config_dir: None,
        health_path: Some("/health"),
        credentials: &["minio-access-key", "minio-secret-key"],
        args: ServerArgs::Fixed(&["/data"]),
    },
];

/// Where an `external` service is reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct External {
    /// Host name or address (for Kafka: a comma-separated bootstrap list is allowed).
    pub host: String,
    /// Port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

/// Where an `external` Elasticsearch is reached (over HTTPS) and how the platform signs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ElasticsearchExternal {
    /// Host name or address.
    pub host: String,
    /// Port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Secret in the release namespace with the platform's `username` and `password`; empty =
    /// the server needs no sign-in.
    pub credentials_secret: String,
    /// `credentialsSecret` also holds `ca.crt`, the CA the services trust for this server
    /// (for a certificate not from a CA the JVM already trusts).
    pub ca_in_secret: bool,
}

/// Persistent storage for operator-managed members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Storage {
    /// Volume size per member.
    pub size: Memory,
    /// StorageClass; empty uses `global.storageClass`, then the cluster default.
    pub storage_class: String,
}

/// MySQL Operator (mysql.oracle.com/v2 InnoDBCluster) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MysqlOperator {
    /// MySQL server instances (Group Replication members).
    #[schemars(range(min = 1, max = 9))]
    pub instances: u32,
    /// MySQL Router instances.
    pub router_instances: u32,
    /// MySQL server version; empty lets the operator choose.
    pub version: String,
    /// Registry path the operator pulls `community-server`, `community-router` and its
    /// `community-operator` sidecar from; with `global.imageRegistry` set, the same path in that
    /// registry (`<imageRegistry>/mysql`, or `<imageRegistry>/<imageProject>`).
    pub image_repository: String,
    /// Version of the installed MySQL Operator: it runs `community-operator:<this>` as a sidecar
    /// of every server pod, so `kubectl datajump images` lists it for mirroring. Empty leaves it
    /// out of the list.
    pub operator_version: String,
    /// Existing Secret with keys rootUser, rootHost, rootPassword (required by the operator).
    #[schemars(length(min = 1))]
    pub root_secret: String,
    /// Data volume per instance.
    pub storage: Storage,
    /// Server resources.
    pub resources: Resources,
}

/// MySQL: the platform's metadata database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mysql {
    /// How MySQL is provided.
    pub mode: Mode,
    /// Application database name.
    pub database: String,
    /// Application user name (its password is `db-password` in the platform Secret).
    pub username: String,
    /// `embedded` settings.
    pub embedded: Embedded,
    /// `operator` settings.
    pub operator: MysqlOperator,
    /// `external` settings.
    pub external: External,
}

/// OT redis-operator (redis.redis.opstreelabs.in/v1beta2 RedisCluster) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisOperator {
    /// Leader count (each with one follower).
    #[schemars(range(min = 3))]
    pub cluster_size: u32,
    /// Redis image used by the operator.
    pub image: Image,
    /// Per-node resources.
    pub resources: Resources,
    /// Data volume per node.
    pub storage: Storage,
}

/// Redis: cache and locks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redis {
    /// How Redis is provided.
    pub mode: Mode,
    /// `embedded` settings.
    pub embedded: Embedded,
    /// `operator` settings.
    pub operator: RedisOperator,
    /// `external` settings.
    pub external: External,
}

/// Strimzi (kafka.strimzi.io/v1 Kafka + KafkaNodePool, KRaft only) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaOperator {
    /// Kafka version (one the installed Strimzi supports).
    pub version: String,
    /// Kafka image (Strimzi's `<strimzi>-kafka-<version>` build); set so it can be mirrored to
    /// Harbor with `global.imageRegistry`.
    pub image: Image,
    /// Nodes in the dual-role (controller + broker) node pool.
    #[schemars(range(min = 1))]
    pub replicas: u32,
    /// Data volume per node.
    pub storage: Storage,
    /// Per-node resources.
    pub resources: Resources,
}

/// Kafka: event streaming between services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kafka {
    /// How Kafka is provided.
    pub mode: Mode,
    /// `embedded` settings (single KRaft node).
    pub embedded: Embedded,
    /// `operator` settings.
    pub operator: KafkaOperator,
    /// `external` settings.
    pub external: External,
}

/// One ECK node set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSet {
    /// Nodes in the set.
    #[schemars(range(min = 1))]
    pub count: u32,
    /// Data volume per node.
    pub storage: Storage,
    /// Per-node resources.
    pub resources: Resources,
}

/// ECK (elasticsearch.k8s.elastic.co/v1 Elasticsearch) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ElasticsearchOperator {
    /// Elasticsearch version.
    pub version: String,
    /// Elasticsearch image; its tag should equal `version`.
    pub image: Image,
    /// Dedicated master nodes.
    pub master: NodeSet,
    /// Data + ingest nodes.
    pub data: NodeSet,
    /// Delete the data volumes together with the Elasticsearch resource (uninstall, a switch
    /// to another mode). Off, ECK deletes claims only on scale-down, so the data outlives an
    /// uninstall (ECK's own default would delete it).
    pub delete_data_on_removal: bool,
}

/// Elasticsearch: search and log storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Elasticsearch {
    /// How Elasticsearch is provided.
    pub mode: Mode,
    /// `embedded` settings (single node).
    pub embedded: Embedded,
    /// `operator` settings.
    pub operator: ElasticsearchOperator,
    /// `external` settings.
    pub external: ElasticsearchExternal,
}

/// MinIO Operator (minio.min.io/v2 Tenant) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MinioOperator {
    /// MinIO image used by the tenant.
    pub image: Image,
    /// Servers in the pool.
    #[schemars(range(min = 1))]
    pub servers: u32,
    /// Volumes per server.
    #[schemars(range(min = 1))]
    pub volumes_per_server: u32,
    /// Size of each volume.
    pub storage: Storage,
    /// Existing Secret with the tenant's `config.env` (MINIO_ROOT_USER / MINIO_ROOT_PASSWORD).
    #[schemars(length(min = 1))]
    pub config_secret: String,
    /// Per-server resources.
    pub resources: Resources,
}

/// The Job that creates the buckets on the embedded object store after install and upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSetup {
    /// Image with `sh` and curl >= 7.75 (for `--aws-sigv4`).
    pub image: Image,
}

/// The S3-compatible object store (artefacts, backups). The key keeps MinIO's name, the API the
/// platform speaks; `embedded` runs RustFS (MinIO's community images are no longer published),
/// `operator` a MinIO Operator Tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Minio {
    /// How the object store is provided.
    pub mode: Mode,
    /// Bucket the platform uses.
    pub bucket: String,
    /// `embedded` settings (a single RustFS server).
    pub embedded: Embedded,
    /// Bucket creation in `embedded` mode (the operator creates the Tenant's buckets itself).
    pub bucket_setup: BucketSetup,
    /// `operator` settings.
    pub operator: MinioOperator,
    /// `external` settings.
    pub external: External,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The StatefulSet template writes fixed arguments into a Go template string literal
    /// (`list "a" "b"`) and paths and keys into YAML plain scalars.
    #[test]
    fn embedded_server_settings_are_safe_to_write_into_templates() {
        for srv in EMBEDDED_SERVERS {
            if let ServerArgs::Fixed(args) = srv.args {
                for arg in args {
                    assert!(
                        !arg.contains(['"', '\\', '\n']),
                        "{}: {arg:?}",
                        srv.component
                    );
                }
            }
            let paths = srv
                .writable
                .iter()
                .chain([&srv.data_path])
                .chain(&srv.config_dir);
            for path in paths {
                assert!(
                    path.starts_with('/') && !path.contains([' ', ':', '#']),
                    "{path}"
                );
            }
            for key in srv.credentials {
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                    "{key}"
                );
            }
        }
    }

    /// Every component listed has an `embedded` mode in the values (the template reads
    /// `.Values.<key>.embedded`).
    #[test]
    fn every_embedded_server_has_embedded_values() {
        let values = serde_json::to_value(crate::profiles::base()).unwrap();
        for srv in EMBEDDED_SERVERS {
            assert!(
                values[srv.values_key]["embedded"].is_object(),
                "{}",
                srv.values_key
            );
        }
    }
}

//! What each embedded (dev) image needs from its pod under the restricted security context, read
//! from the real helm render: every path its entrypoint writes is a volume (the root filesystem is
//! read-only), the settings a single node needs are set, and heaps fit the memory limit. The
//! README's "Embedded infrastructure" table lists the same facts with their reasons.

use chart_gen::model::Environment;
use serde_json::Value;

use crate::support::*;

/// The StatefulSet of one embedded component in the dev render.
fn statefulset(objs: &[Value], component: &str) -> Value {
    find(objs, "StatefulSet", &format!("datajump-{component}")).clone()
}

fn main_container(sts: &Value) -> &Value {
    &sts["spec"]["template"]["spec"]["containers"][0]
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

/// Mount path → volume name of a container.
fn mounts(container: &Value) -> Vec<(String, String)> {
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap_or_default().to_string(),
                m["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The volume a path is written to: the longest mount that contains it, or `None` when the
/// path would land on the (read-only) root filesystem.
fn volume_for(container: &Value, path: &str) -> Option<String> {
    mounts(container)
        .into_iter()
        .filter(|(mount, _)| path == mount || path.starts_with(&format!("{mount}/")))
        .max_by_key(|(mount, _)| mount.len())
        .map(|(_, volume)| volume)
}

fn volume<'a>(sts: &'a Value, name: &str) -> &'a Value {
    sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// Paths must be writable: on an emptyDir or the data volume claim, never the image.
fn assert_writable(sts: &Value, paths: &[&str]) {
    let c = main_container(sts);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let claims: Vec<&str> = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["metadata"]["name"].as_str())
        .collect();
    for path in paths {
        let volume_name = volume_for(c, path)
            .unwrap_or_else(|| panic!("{path} is on the read-only root filesystem"));
        if !claims.contains(&volume_name.as_str()) {
            assert!(
                volume(sts, &volume_name).get("emptyDir").is_some(),
                "{path} is on volume {volume_name}, which is neither the data claim nor an emptyDir"
            );
        }
    }
}

/// A directory the entrypoint edits is an emptyDir seeded from the image by an init container
/// that runs the same image under the same restrictions.
fn assert_seeded_config(sts: &Value, dir: &str) {
    let spec = &sts["spec"]["template"]["spec"];
    let c = main_container(sts);
    let volume_name = volume_for(c, dir).unwrap_or_else(|| panic!("{dir} is not mounted"));
    assert!(volume(sts, &volume_name).get("emptyDir").is_some());
    let init = spec["initContainers"]
        .as_array()
        .and_then(|cs| cs.first())
        .unwrap_or_else(|| panic!("no init container seeds {dir}"));
    assert_eq!(init["image"], c["image"], "seeded from the same image");
    let command: Vec<&str> = init["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command, ["cp", "-R", &format!("{dir}/."), "/seed/"]);
    assert_eq!(
        mounts(init),
        [("/seed".to_string(), volume_name)],
        "the init container writes only the seed volume"
    );
    assert_eq!(init["securityContext"], c["securityContext"]);
}

/// The platform Secret's keys are files under /credentials, read-only; no container of the pod
/// takes a credential from its environment.
fn assert_credentials_mounted(sts: &Value, keys: &[&str]) {
    let c = main_container(sts);
    assert_eq!(
        volume_for(c, "/credentials").as_deref(),
        Some("credentials")
    );
    let secret = &volume(sts, "credentials")["secret"];
    assert_eq!(secret["secretName"], "datajump-credentials");
    let items: Vec<(&str, &str)> = secret["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap(), i["path"].as_str().unwrap()))
        .collect();
    let expected: Vec<(&str, &str)> = keys.iter().map(|k| (*k, *k)).collect();
    assert_eq!(items, expected);
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["valueFrom"]["secretKeyRef"].is_null()),
        "a credential in the environment"
    );
}

fn data_mount(sts: &Value) -> String {
    mounts(main_container(sts))
        .into_iter()
        .find(|(_, v)| v == "data")
        .map(|(m, _)| m)
        .expect("data volume mounted")
}

fn memory_limit_mib(container: &Value) -> u64 {
    let limit = container["resources"]["limits"]["memory"].as_str().unwrap();
    if let Some(gi) = limit.strip_suffix("Gi") {
        gi.parse::<u64>().unwrap() * 1024
    } else {
        limit.strip_suffix("Mi").unwrap().parse().unwrap()
    }
}

#[test]
fn kafka_gets_a_writable_config_a_cluster_id_a_heap_within_its_limit() {
    let objs = render(Environment::Dev, &[]);
    let sts = statefulset(&objs, "kafka");
    let c = main_container(&sts);
    assert_seeded_config(&sts, "/opt/kafka/config");
    assert_writable(&sts, &["/opt/kafka/config", "/opt/kafka/logs", "/tmp"]);

    // KRaft single node: both roles, a quorum of itself, replication factors of 1.
    assert_eq!(env(c, "KAFKA_PROCESS_ROLES"), Some("broker,controller"));
    assert_eq!(
        env(c, "KAFKA_CONTROLLER_QUORUM_VOTERS"),
        Some("1@localhost:9093")
    );
    assert_eq!(env(c, "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"), Some("1"));

    // Log directories below the volume root, never the root itself (lost+found).
    let logs = env(c, "KAFKA_LOG_DIRS").unwrap();
    let data = data_mount(&sts);
    assert!(logs.starts_with(&format!("{data}/")), "{logs} under {data}");

    // The storage format needs a valid cluster id: 22 base64url characters, reproducible.
    let id = env(c, "CLUSTER_ID").unwrap();
    assert_eq!(id.len(), 22);
    assert!(
        id.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    );
    let again = render(Environment::Dev, &[]);
    assert_eq!(
        env(main_container(&statefulset(&again, "kafka")), "CLUSTER_ID"),
        Some(id)
    );

    // No fixed heap: a share of the container limit, at most half.
    let heap = env(c, "KAFKA_HEAP_OPTS").unwrap();
    assert!(!heap.contains("-Xmx") && !heap.contains("-Xms"), "{heap}");
    let percent: f64 = heap
        .split_whitespace()
        .find_map(|opt| opt.strip_prefix("-XX:MaxRAMPercentage="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(percent > 0.0 && percent <= 50.0, "{heap}");
    assert!(memory_limit_mib(c) >= 512);
}

#[test]
fn elasticsearch_gets_a_writable_config_single_node_and_no_mmap() {
    let objs = render(Environment::Dev, &[]);
    let sts = statefulset(&objs, "elasticsearch");
    let c = main_container(&sts);
    assert_seeded_config(&sts, "/usr/share/elasticsearch/config");
    assert_writable(
        &sts,
        &[
            "/usr/share/elasticsearch/config/elasticsearch.keystore",
            "/usr/share/elasticsearch/data",
            "/usr/share/elasticsearch/logs",
            "/tmp",
        ],
    );
    assert_eq!(env(c, "discovery.type"), Some("single-node"));
    // vm.max_map_count cannot be raised from a restricted pod.
    assert_eq!(env(c, "node.store.allow_mmap"), Some("false"));
    // Heap sized by Elasticsearch from the limit, not fixed.
    let java_opts = env(c, "ES_JAVA_OPTS").unwrap_or_default();
    assert!(!java_opts.contains("-Xmx"), "{java_opts}");
    // Ready means the node serves a yellow or green cluster, not just an open port.
    let path = c["readinessProbe"]["httpGet"]["path"].as_str().unwrap();
    assert!(path.starts_with("/_cluster/health") && path.contains("wait_for_status=yellow"));
}

#[test]
fn mysql_initialises_a_data_subdirectory() {
    let objs = render(Environment::Dev, &[]);
    let sts = statefulset(&objs, "mysql");
    let c = main_container(&sts);
    let data = data_mount(&sts);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let datadir = args
        .iter()
        .find_map(|a| a.strip_prefix("--datadir="))
        .expect("--datadir given");
    assert!(
        datadir.starts_with(&format!("{data}/")),
        "datadir {datadir} must be below the volume root {data} (lost+found)"
    );
    assert_eq!(
        args[0], "mysqld",
        "the entrypoint runs mysqld with the flags"
    );
    // The socket directory and secure-file-priv are checked at start.
    assert_writable(
        &sts,
        &[datadir, "/var/run/mysqld", "/var/lib/mysql-files", "/tmp"],
    );
    assert_eq!(env(c, "MYSQL_DATABASE"), Some("datajump"));
    assert_eq!(
        env(c, "MYSQL_ROOT_PASSWORD_FILE"),
        Some("/credentials/db-root-password")
    );
    assert_eq!(
        env(c, "MYSQL_PASSWORD_FILE"),
        Some("/credentials/db-password")
    );
    assert_credentials_mounted(&sts, &["db-root-password", "db-password"]);
}

#[test]
fn object_store_is_a_maintained_image_with_its_buckets_created() {
    let objs = render(Environment::Dev, &[]);
    let sts = statefulset(&objs, "minio");
    let c = main_container(&sts);
    let image = c["image"].as_str().unwrap();
    assert!(
        !image.contains("minio/minio"),
        "{image}: MinIO's community images are no longer published"
    );
    assert!(image.contains("rustfs/rustfs:"), "{image}");
    let data = data_mount(&sts);
    assert_eq!(c["args"], serde_json::json!([data]));
    let logs = env(c, "RUSTFS_OBS_LOG_DIRECTORY").unwrap();
    assert_writable(&sts, &[logs, "/tmp", &data]);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(
        env(c, "RUSTFS_ACCESS_KEY_FILE"),
        Some("/credentials/minio-access-key")
    );
    assert_eq!(
        env(c, "RUSTFS_SECRET_KEY_FILE"),
        Some("/credentials/minio-secret-key")
    );
    assert_credentials_mounted(&sts, &["minio-access-key", "minio-secret-key"]);

    // The buckets: created after install and upgrade by a hook Job, with the platform's bucket
    // and (when backups upload to this store) the backup bucket.
    let buckets = |objs: &[Value]| -> String {
        let job = find(objs, "Job", "datajump-minio-buckets");
        assert_eq!(
            job["metadata"]["annotations"]["helm.sh/hook"],
            "post-install,post-upgrade"
        );
        let c = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(env(c, "S3_ENDPOINT"), Some("http://datajump-minio:9000"));
        env(c, "BUCKETS").unwrap().to_string()
    };
    assert_eq!(buckets(&objs), "datajump");
    let with_upload = render_with(Environment::Dev, "backup:\n  upload:\n    enabled: true\n");
    assert_eq!(buckets(&with_upload), "datajump datajump-backups");
    let elsewhere = render_with(
        Environment::Dev,
        "backup:\n  upload:\n    enabled: true\n    endpoint: https://s3.example.com\n",
    );
    assert_eq!(
        buckets(&elsewhere),
        "datajump",
        "another store's bucket is its own"
    );
    let script = find(&objs, "ConfigMap", "datajump-minio-buckets")["data"]["create-buckets.sh"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(script.starts_with("#!/bin/sh"));

    // Operator mode: the Tenant holds both buckets (prod uploads its backups there).
    let prod = render(Environment::Prod, &[]);
    let tenant = kinds(&prod, "Tenant").pop().expect("prod renders a Tenant");
    let names: Vec<&str> = tenant["spec"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["datajump", "datajump-backups"]);
    assert!(
        !prod
            .iter()
            .any(|o| o["metadata"]["name"] == "datajump-minio-buckets"),
        "no bucket Job where the operator creates them"
    );
}

#[test]
fn redis_reads_its_password_from_a_private_config_file() {
    let objs = render(Environment::Dev, &[]);
    let sts = statefulset(&objs, "redis");
    let c = main_container(&sts);
    assert_credentials_mounted(&sts, &["redis-password"]);
    let config = env(c, "REDIS_CONFIG").unwrap();
    assert_writable(&sts, &[config, "/data"]);
    let script = c["args"][2].as_str().unwrap();
    assert!(script.contains("umask 077"), "{script}");
    assert!(script.contains("/credentials/redis-password"), "{script}");
    assert!(
        script.contains("exec redis-server \"$REDIS_CONFIG\""),
        "{script}"
    );
    assert!(
        !script.contains("--requirepass"),
        "no password on the command line"
    );
}

#[test]
fn every_embedded_server_has_a_startup_probe_before_liveness_counts() {
    let objs = render(Environment::Dev, &[]);
    for component in ["mysql", "redis", "kafka", "elasticsearch", "minio"] {
        let sts = statefulset(&objs, component);
        let c = main_container(&sts);
        let startup = &c["startupProbe"];
        let budget = startup["periodSeconds"].as_u64().unwrap()
            * startup["failureThreshold"].as_u64().unwrap();
        assert!(budget >= 300, "{component}: {budget}s to start");
        assert!(c["livenessProbe"].is_object(), "{component}");
    }
}

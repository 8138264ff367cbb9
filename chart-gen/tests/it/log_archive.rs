//! `scheduler.logArchive` as rendered: what the scheduler is told (endpoint, bucket, key
//! prefix, credential files from the right Secret keys, a private CA), the RBAC it and its
//! readers get (nothing more when it is off), the NetworkPolicies the service proxy and an
//! outside endpoint need, and the bucket the chart's own object store creates for it.

use serde_json::Value;

use crate::support::{find, kinds, render, render_with};
use chart_gen::model::Environment;

fn container_env<'a>(deployment: &'a Value, name: &str) -> Option<&'a str> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

fn volume<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("volume {name}"))
}

/// Whether the scheduler's Role allows `verb` on `resource`.
fn scheduler_may(objs: &[Value], resource: &str, verb: &str) -> bool {
    find(objs, "Role", "datajump-scheduler")["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == resource)
                && r["verbs"].as_array().unwrap().iter().any(|x| x == verb)
        })
}

#[test]
fn off_by_default_and_then_nothing_of_it_is_rendered() {
    let objs = render(Environment::Dev, &[]);
    let sched = find(&objs, "Deployment", "datajump-scheduler");
    assert_eq!(container_env(sched, "DATAJUMP_LOG_ARCHIVE_ENDPOINT"), None);
    assert!(
        !scheduler_may(&objs, "pods/log", "get"),
        "no pods/log without the archive"
    );
    assert!(
        !scheduler_may(&objs, "pods", "patch"),
        "no pod patch without the archive"
    );
    assert!(
        kinds(&objs, "Role")
            .iter()
            .all(|r| r["metadata"]["name"] != "datajump-scheduler-log-reader")
    );
}

#[test]
fn an_outside_endpoint_with_its_secret_ca_and_network_policies() {
    let objs = render_with(
        Environment::Dev,
        "scheduler:
  logArchive:
    enabled: true
    endpoint: https://s3.example.com:9443
    bucket: task-logs
    keyPrefix: dj/dev
    credentials: {secretName: s3-logs, accessKeyKey: id, secretKeyKey: secret}
    ca: {configMapName: s3-ca, key: root.pem}
    endpointCidrs: [203.0.113.0/24]
networkPolicy:
  enabled: true
  apiServerCidrs: [10.0.0.1/32]
",
    );
    let sched = find(&objs, "Deployment", "datajump-scheduler");
    for (name, value) in [
        (
            "DATAJUMP_LOG_ARCHIVE_ENDPOINT",
            "https://s3.example.com:9443",
        ),
        ("DATAJUMP_LOG_ARCHIVE_BUCKET", "task-logs"),
        ("DATAJUMP_LOG_ARCHIVE_KEY_PREFIX", "dj/dev"),
        ("DATAJUMP_LOG_ARCHIVE_REGION", "us-east-1"),
        (
            "DATAJUMP_LOG_ARCHIVE_ACCESS_KEY_FILE",
            "/etc/datajump/log-archive/credentials/access-key",
        ),
        (
            "DATAJUMP_LOG_ARCHIVE_CA_FILE",
            "/etc/datajump/log-archive/ca/ca.crt",
        ),
        ("DATAJUMP_LOG_ARCHIVE_GIVE_UP_AFTER", "86400"),
    ] {
        assert_eq!(container_env(sched, name), Some(value), "{name}");
    }
    let creds = volume(sched, "log-archive-credentials");
    assert_eq!(creds["secret"]["secretName"], "s3-logs");
    assert_eq!(
        creds["secret"]["items"],
        serde_json::json!([{"key": "id", "path": "access-key"}, {"key": "secret", "path": "secret-key"}])
    );
    let ca = volume(sched, "log-archive-ca");
    assert_eq!(
        ca["configMap"]["items"],
        serde_json::json!([{"key": "root.pem", "path": "ca.crt"}])
    );

    // The scheduler reads pod logs, and stops running task pods in place (patching their
    // deadline) rather than deleting them; readers get the service proxy of the scheduler only.
    assert!(scheduler_may(&objs, "pods/log", "get"));
    assert!(scheduler_may(&objs, "pods", "patch"));
    let reader = find(&objs, "Role", "datajump-scheduler-log-reader");
    assert_eq!(
        reader["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["services/proxy"],
            "resourceNames": ["datajump-scheduler", "http:datajump-scheduler:http"], "verbs": ["get"]}])
    );

    // The API server's proxy reaches the scheduler's http port; the scheduler reaches the
    // endpoint's CIDRs on its port.
    let proxy = find(
        &objs,
        "NetworkPolicy",
        "datajump-allow-apiserver-proxy-scheduler",
    );
    assert_eq!(
        proxy["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"],
        "10.0.0.1/32"
    );
    assert_eq!(proxy["spec"]["ingress"][0]["ports"][0]["port"], "http");
    let out = find(&objs, "NetworkPolicy", "datajump-allow-log-archive");
    assert_eq!(
        out["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"],
        "203.0.113.0/24"
    );
    assert_eq!(out["spec"]["egress"][0]["ports"][0]["port"], 9443);
}

#[test]
fn the_charts_own_object_store_by_default_with_the_platform_keys_and_the_bucket_created() {
    let objs = render_with(
        Environment::Dev,
        "scheduler:\n  logArchive:\n    enabled: true\n",
    );
    let sched = find(&objs, "Deployment", "datajump-scheduler");
    assert_eq!(
        container_env(sched, "DATAJUMP_LOG_ARCHIVE_ENDPOINT"),
        Some("http://datajump-minio:9000")
    );
    assert_eq!(container_env(sched, "DATAJUMP_LOG_ARCHIVE_CA_FILE"), None);
    let creds = volume(sched, "log-archive-credentials");
    assert_eq!(
        creds["secret"]["items"],
        serde_json::json!([{"key": "minio-access-key", "path": "access-key"},
            {"key": "minio-secret-key", "path": "secret-key"}])
    );
    let job = find(&objs, "Job", "datajump-minio-buckets");
    let buckets = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "BUCKETS")
        .and_then(|e| e["value"].as_str())
        .unwrap();
    assert_eq!(buckets, "datajump datajump-logs");
}
